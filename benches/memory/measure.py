#!/usr/bin/env python3
"""Quick look at the desktop app's memory, per process and per mapping (issue 12).

Not the benchmark (that is `./scripts/bench.sh --only desktop`, driven over
WebDriver): this runs the app directly under its own Xvfb, pointed at its own
gateway on 127.0.0.1, so a setting can be compared before/after in a minute.

  measure.py --app PATH --gateway PATH [--entities 10000] [--busy-secs 20]
             [--rate 1000] [--env K=V]... [--label NAME] [--out FILE.json]

Steps: a gateway (memory store, no request limits for the publisher) is filled
with ENTITIES entities (the same shapes as the benchmark's `seed_events`); a
first launch fills the app's cache and is ended; a second launch (cold start
from the cache) is left 5 s after its web process has settled (idle), then the
gateway is published RATE events/s for BUSY_SECS (agent heartbeats and 20
`bench` markers a second, as the benchmark) while the PSS of the app's
processes is sampled every 500 ms (busy = the highest). Prints the idle and
busy totals with the per-process split and, idle, smaps.py's per-mapping
breakdown. `--app` may be any Tauri binary (e.g. the `blank` example: the
platform floor); `--entities 0` skips the gateway.

Bounded: each wait has a deadline; every process it starts is ended on exit.
"""

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smaps  # noqa: E402

SECRET = "pulse-memory-measure-secret-0123456789abcdef"
TENANT = "desktop"
STATES = ["backlog", "todo", "in_progress", "review", "done"]
STATUSES = ["idle", "busy", "waiting"]


def seed(i):
    k = i // 5
    state, status = STATES[k % 5], STATUSES[k % 3]
    return [
        {"type": "ticket.created", "data": {"id": f"tkt-{k}", "title": f"Ticket {k}: refund stuck in review", "state": state, "assignee": f"agent-{k % 40}"}},
        {"type": "agent.upserted", "data": {"id": f"agent-{k}", "name": f"Agent {k}", "status": status}},
        {"type": "approval.created", "data": {"id": f"apr-{k}", "title": f"Deploy service-{k % 37} v2.{k % 20}.0", "requested_by": f"agent-{k % 40}"}},
        {"type": "conversation.created", "data": {"id": f"conv-{k}", "subject": f"Customer {k} asks about an invoice", "customer": f"customer-{k}"}},
        {"type": "notification.new", "data": {"id": f"ntf-{k}", "title": f"Build {k} finished", "body": "all checks passed"}},
    ][i % 5]


def post(url, token, events):
    req = urllib.request.Request(
        f"{url}/v1/ingest",
        data=json.dumps(events).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                text = f.read()
            ppid = int(text[text.rfind(")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(p))
    return out


def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children(p))
    return pids


def tree_pss(pid):
    each = []
    for p in tree(pid):
        try:
            r = smaps.rollup(p)
        except OSError:
            continue
        each.append((smaps.name(p), r.get("Pss", 0) / 1024, r.get("Rss", 0) / 1024))
    return each


def cached(data_dir):
    """Entities in the fullest cache file of `data_dir` (0 while there is none)."""
    best = 0
    for f in os.listdir(data_dir) if os.path.isdir(data_dir) else []:
        if not f.endswith(".db"):
            continue
        try:
            c = sqlite3.connect(f"file:{os.path.join(data_dir, f)}?mode=ro", uri=True, timeout=1)
            tables = [r[0] for r in c.execute("select name from sqlite_master where type='table' and name like 'entities%'")]
            for t in tables:
                best = max(best, c.execute(f"select count(*) from {t}").fetchone()[0])
            c.close()
        except sqlite3.Error:
            pass
    return best


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, env=None, stdout=None):
        p = subprocess.Popen(args, env=env, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except ProcessLookupError:
                pass


def wait_for(cond, secs, what):
    deadline = time.time() + secs
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise RuntimeError(f"timed out: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--busy-secs", type=float, default=20)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--label", default="")
    ap.add_argument("--out")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--keep", help="directory for the app's data (reused between runs with the same entities)")
    a = ap.parse_args()
    procs = Procs()
    result = {"label": a.label, "env": a.env, "entities": a.entities}
    try:
        root = a.keep or tempfile.mkdtemp(prefix="pulse-mem-")
        for d in ["home", "config", "cache", "runtime", "data"]:
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "runtime"), 0o700)
        display = next(n for n in range(300, 400) if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"))
        procs.start(["Xvfb", f":{display}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{display}"), 10, "Xvfb")
        env = {
            "PATH": os.environ["PATH"],
            "DISPLAY": f":{display}",
            "HOME": f"{root}/home",
            "XDG_CONFIG_HOME": f"{root}/config",
            "XDG_DATA_HOME": f"{root}/data",
            "XDG_CACHE_HOME": f"{root}/cache",
            "XDG_RUNTIME_DIR": f"{root}/runtime",
            "PULSE_CONFIG_DIR": f"{root}/config",
            "PULSE_DATA_DIR": f"{root}/data",
            "PULSE_NO_OS_NOTIFICATIONS": "1",
            "PULSE_NO_SCHEME_REGISTRATION": "1",
            "PULSE_LOG": "warn",
        }
        pub = None
        url = None
        if a.entities > 0:
            gw_out = tempfile.TemporaryFile(mode="w+")
            gw = procs.start([a.gateway, "serve", "--addr", "127.0.0.1:0", "--jwt-secret", SECRET, "--requests-per-second", "0", "--connections-per-token", "0"], stdout=gw_out)

            def listening():
                gw_out.seek(0)
                for line in gw_out.read().splitlines():
                    if "listening on " in line:
                        return line.split("listening on ")[1].split()[0]
                if gw.poll() is not None:
                    raise RuntimeError("the gateway exited")
                return None

            url = wait_for(listening, 30, "gateway")
            mint = lambda role: subprocess.check_output([a.gateway, "mint", "--secret", SECRET, "--tenant", TENANT, "--sub", "bench", "--role", role, "--ttl", "24h"], text=True).strip()
            pub = mint("publisher")
            env["PULSE_SERVER"] = url
            env["PULSE_TOKEN"] = mint("viewer")
            batch = []
            for i in range(a.entities):
                batch.append(seed(i))
                if len(batch) >= 2000:
                    post(url, pub, batch)
                    batch = []
            if batch:
                post(url, pub, batch)
            if cached(f"{root}/data") < a.entities:
                app = procs.start([a.app], env=env)
                wait_for(lambda: cached(f"{root}/data") >= a.entities, 120, "cache filled")
                procs.stop(app)
                time.sleep(1)
        for kv in a.env:
            k, _, v = kv.partition("=")
            env[k] = v
        t0 = time.time()
        app = procs.start([a.app], env=env)
        wait_for(lambda: any(n == "WebKitWebProcess" for n, _, _ in tree_pss(app.pid)), 30, "web process")
        # Settled: the web process's PSS changes by under 1 MiB over 1 s (the
        # page has loaded the cache), then the benchmark's 5 s.
        last = None
        deadline = time.time() + 30
        while time.time() < deadline:
            cur = sum(p for _, p, _ in tree_pss(app.pid))
            if last is not None and abs(cur - last) < 1:
                break
            last = cur
            time.sleep(1)
        time.sleep(5)
        pids = tree(app.pid)
        idle = [smaps.report(p, a.top) for p in pids if os.path.exists(f"/proc/{p}")]
        result["idle"] = idle
        result["idle_total_mib"] = sum(r["pss_kib"] for r in idle) / 1024
        result["started_s"] = time.time() - t0
        print(f"== {a.label} {' '.join(a.env)}")
        print(f"idle: {result['idle_total_mib']:.1f} MiB PSS: " + ", ".join(f"{r['name']} {r['pss_kib'] / 1024:.1f} (anon {r['pss_anon_kib'] / 1024:.1f}, file {r['pss_file_kib'] / 1024:.1f})" for r in idle))
        for r in idle:
            print(f"  {r['name']}:")
            for m in r["mappings"]:
                print(f"    {m.get('pss', 0) / 1024:7.1f} MiB  anon {m.get('anon', 0) / 1024:6.1f}  file {m.get('file', 0) / 1024:6.1f}  x{m.get('mappings', 0):<4} {m['map']}")
        if pub and a.busy_secs > 0:
            agents = max(a.entities // 5, 1)
            every = max(a.rate // 20, 1)
            sent, marker = 0, 0
            start = time.time()
            peak, peak_each = 0, []
            last_sample = 0
            cpu0 = sum(cpu_ticks(p) for p in tree(app.pid))
            total = int(a.rate * a.busy_secs)
            while sent < total:
                time.sleep(0.02)
                due = min(int((time.time() - start) * a.rate), total)
                events = []
                for k in range(sent, due):
                    if k % every == 0:
                        marker += 1
                        events.append({"type": "stats.updated", "data": {"scope": "bench", "stats": {"marker": marker}}})
                    else:
                        events.append({"type": "agent.heartbeat", "data": {"id": f"agent-{k % agents}", "load": k % 100}})
                if events:
                    post(url, pub, events)
                sent = due
                if time.time() - last_sample >= 0.5:
                    last_sample = time.time()
                    each = tree_pss(app.pid)
                    s = sum(p for _, p, _ in each)
                    if s > peak:
                        peak, peak_each = s, each
            cpu1 = sum(cpu_ticks(p) for p in tree(app.pid))
            result["busy_peak_mib"] = peak
            result["busy_each"] = peak_each
            result["busy_cpu_cores"] = (cpu1 - cpu0) / os.sysconf("SC_CLK_TCK") / (time.time() - start)
            print(f"busy ({a.rate}/s, {a.busy_secs:.0f} s): peak {peak:.1f} MiB PSS: " + ", ".join(f"{n} {p:.1f}" for n, p, _ in peak_each) + f"; app CPU {result['busy_cpu_cores']:.2f} cores")
            busy_pids = tree(app.pid)
            result["after_busy"] = [smaps.report(p, a.top) for p in busy_pids if os.path.exists(f"/proc/{p}")]
            print("after busy: " + ", ".join(f"{r['name']} {r['pss_kib'] / 1024:.1f} (anon {r['pss_anon_kib'] / 1024:.1f})" for r in result["after_busy"]))
        if a.out:
            with open(a.out, "w") as f:
                json.dump(result, f, indent=1)
    finally:
        procs.stop_all()


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        fields = text[text.rfind(")") + 2 :].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    main()
