"""Seed 003: the FastAPI dashboard WebSocket, as the seed proposes it.

- WebSocket at /ws/dashboard (and the existing /api/v1/stats/ws), JWT in
  `?token=`; a bad token is refused by closing before accept (HTTP 403);
- messages `{type, timestamp, user_id?, data}`; the client's text `ping` is
  answered `{"type": "pong"}`; `{"type": "subscribe", ...}` is recorded;
- REST: GET /api/v1/stats/dashboard, GET /api/v1/workflows/executions ({data}),
  bearer token; the admin blocks GET /api/v1/admin/system/metrics,
  /api/v1/analytics/costs, /api/v1/admin/connectors/stats (state `system`,
  `costs`, `connectors`; 403 for a token not in state `admins` when it is set).

Control (tests): POST /_control/emit {type, data}, /_control/raw {text},
/_control/drop, /_control/freeze, /_control/tokens {valid}, /_control/state {...};
GET /_control/info.

Run: python server.py [--port P] [--state FILE] [--tokens a,b]; prints the port
as its first stdout line.
"""

import argparse
import asyncio
import json
import socket
import sys
from datetime import datetime, timezone

import uvicorn
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--state")
parser.add_argument("--tokens", default="")
args = parser.parse_args()

state = {"dashboard": {}, "executions": []}
if args.state:
    with open(args.state, encoding="utf-8") as f:
        state.update(json.load(f))
tokens = {t for t in args.tokens.split(",") if t}
counters = {"connections": 0, "auth_ok": 0, "auth_refused": 0, "pings": 0, "rest": {}, "rest_refused": 0}


class Conn:
    def __init__(self, ws: WebSocket, user: str):
        self.ws = ws
        self.user = user
        self.frozen = False
        self.subscriptions: list = []


conns: set = set()
app = FastAPI()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


async def dashboard_socket(websocket: WebSocket):
    counters["connections"] += 1
    token = websocket.query_params.get("token")
    if token not in tokens:
        counters["auth_refused"] += 1
        await websocket.close(code=1008)
        return
    counters["auth_ok"] += 1
    await websocket.accept()
    conn = Conn(websocket, "user-1")
    conns.add(conn)
    try:
        while True:
            data = await websocket.receive_text()
            if conn.frozen:
                continue
            if data == "ping":
                counters["pings"] += 1
                await websocket.send_json({"type": "pong"})
                continue
            try:
                msg = json.loads(data)
            except ValueError:
                await websocket.send_json({"type": "error", "timestamp": now_iso(), "data": {"message": "bad JSON"}})
                continue
            if isinstance(msg, dict) and msg.get("type") == "subscribe":
                conn.subscriptions.append(msg)
    except WebSocketDisconnect:
        pass
    finally:
        conns.discard(conn)


app.add_api_websocket_route("/ws/dashboard", dashboard_socket)
app.add_api_websocket_route("/api/v1/stats/ws", dashboard_socket)


def authorized(request: Request, path: str) -> bool:
    counters["rest"][path] = counters["rest"].get(path, 0) + 1
    header = request.headers.get("authorization", "")
    ok = header.startswith("Bearer ") and header[7:] in tokens
    if not ok:
        counters["rest_refused"] += 1
    return ok


@app.get("/api/v1/stats/dashboard")
async def dashboard_stats(request: Request):
    if not authorized(request, "/api/v1/stats/dashboard"):
        return JSONResponse({"detail": "Not authenticated"}, status_code=401)
    return state["dashboard"]


def admin_block(key: str, path: str):
    """An admin-only block (the seed's system metrics, costs, connectors): 401 without
    a valid token, 403 for a token not in `state["admins"]` (default: every valid
    token), 404 while the state has no such block."""

    async def handler(request: Request):
        if not authorized(request, path):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        token = request.headers.get("authorization", "")[7:]
        admins = state.get("admins")
        if admins is not None and token not in admins:
            return JSONResponse({"detail": "The user doesn't have enough privileges"}, status_code=403)
        if key not in state:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return state[key]

    app.add_api_route(path, handler, methods=["GET"])


admin_block("system", "/api/v1/admin/system/metrics")
admin_block("costs", "/api/v1/analytics/costs")
admin_block("connectors", "/api/v1/admin/connectors/stats")


@app.get("/api/v1/workflows/executions")
async def executions(request: Request):
    if not authorized(request, "/api/v1/workflows/executions"):
        return JSONResponse({"detail": "Not authenticated"}, status_code=401)
    return {"data": state["executions"], "count": len(state["executions"])}


async def send_all(text: str) -> int:
    n = 0
    for c in list(conns):
        try:
            await c.ws.send_text(text)
            n += 1
        except Exception:  # noqa: BLE001 - a closing socket
            conns.discard(c)
    return n


@app.post("/_control/{verb}")
async def control(verb: str, request: Request):
    global tokens
    try:
        body = await request.json()
    except ValueError:
        body = {}
    if verb == "emit":
        msg = {"type": body["type"], "timestamp": now_iso(), "user_id": "user-1", "data": body.get("data")}
        return {"sent": await send_all(json.dumps(msg))}
    if verb == "raw":
        return {"sent": await send_all(body["text"])}
    if verb == "drop":
        n = len(conns)
        for c in list(conns):
            try:
                await c.ws.close(code=1012)
            except Exception:  # noqa: BLE001
                pass
        return {"dropped": n}
    if verb == "freeze":
        for c in conns:
            c.frozen = True
        return {"frozen": len(conns)}
    if verb == "tokens":
        tokens = set(body.get("valid", []))
        return {"ok": True}
    if verb == "state":
        state.update(body)
        return {"ok": True}
    return JSONResponse({"detail": f"no control verb {verb}"}, status_code=404)


@app.get("/_control/info")
async def info():
    return dict(counters, clients=len(conns), subscriptions=[c.subscriptions for c in conns], state=state)


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    sys.stdout.write(f"{sock.getsockname()[1]}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="off")
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))


if __name__ == "__main__":
    main()
