#!/usr/bin/env python3
"""Cold starts of the desktop app from an N-entity cache, phase by phase.

A narrow stand-in for the desktop benchmark's cold-start part (pulse-bench
`desktop`), for comparing two builds back to back without WebDriver: the app
runs under Xvfb with `PULSE_STARTUP_TRACE=1`, which prints the shell's phases
and (after the last chunk) the page's; "first piece painted (frame)" is the
frame the benchmark counts (the one after `data-loaded=true`).

    benches/startup/cold.py --app A [--app B ...] [--entities 10000] [--runs 5]
                            [--gateway PATH] [--work DIR]

An app is a binary's path, optionally followed by environment settings for
it: `--app "/path/pulse PULSE_WEBKIT_DEFAULTS=1"`.

Per app: the gateway (memory store, loopback, port 0) is filled with the
benchmark's entities (the same shapes as pulse-bench's `seed_events`); a first
launch fills the cache; then the apps' cold starts are interleaved (A B A B ...)
and each phase's median is printed. Bounded: every wait has a deadline, every
process started here is stopped here.
"""
import argparse, json, os, queue, re, signal, socket, sqlite3, statistics, subprocess, sys, threading, time, urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "memory"))
# One home for the benchmark's entities, the waits and the cache count.
from measure import cached, seed, wait_for  # noqa: E402


def seed_events(n):
    return (seed(i) for i in range(n))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


MARK = re.compile(r"pulse startup: (.+?)\s+\+([0-9.]+) ms")


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", action="append", required=True)
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gateway", default=os.environ.get("PULSE_GATEWAY_BIN", "pulse-gateway"))
    ap.add_argument("--work", default="/var/tmp/startup-bench/work")
    ap.add_argument("--wrap", default="", help="a command to run each cold start under, e.g. 'perf record -g -o FILE --'")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    for d in ["home", "config", "cache", "runtime"]:
        os.makedirs(os.path.join(work, d), exist_ok=True)
    os.chmod(os.path.join(work, "runtime"), 0o700)
    procs = []
    try:
        disp = next(n for n in range(150, 250) if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"))
        procs.append(subprocess.Popen(["Xvfb", f":{disp}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL))
        wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{disp}"), 10, "Xvfb")
        secret = "startup-bench-secret-0123456789abcdef"
        port = free_port()
        gw = subprocess.Popen([a.gateway, "serve", "--addr", f"127.0.0.1:{port}", "--jwt-secret", secret,
                               "--requests-per-second", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(gw)
        url = f"http://127.0.0.1:{port}"
        mint = lambda role: subprocess.check_output([a.gateway, "mint", "--secret", secret, "--tenant", "bench", "--sub", "bench", "--role", role, "--ttl", "24h"], text=True).strip()
        pub, viewer = mint("publisher"), mint("viewer")

        def up():
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False
        wait_for(up, 10, "the gateway")
        batch = []
        def send(b):
            req = urllib.request.Request(f"{url}/v1/ingest", data=json.dumps(b).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {pub}", "Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=30).read()
        for e in seed_events(a.entities):
            batch.append(e)
            if len(batch) >= 2000:
                send(batch); batch = []
        if batch:
            send(batch)

        def env(data_dir, trace):
            e = dict(os.environ)
            e.update({"DISPLAY": f":{disp}", "HOME": f"{work}/home", "XDG_CONFIG_HOME": f"{work}/config",
                      "XDG_DATA_HOME": data_dir, "XDG_CACHE_HOME": f"{work}/cache", "XDG_RUNTIME_DIR": f"{work}/runtime",
                      "PULSE_CONFIG_DIR": f"{work}/config", "PULSE_DATA_DIR": data_dir, "PULSE_SERVER": url,
                      "PULSE_TOKEN": viewer, "PULSE_NO_OS_NOTIFICATIONS": "1", "PULSE_NO_SCHEME_REGISTRATION": "1",
                      "PULSE_LOG": "warn"})
            if trace:
                e["PULSE_STARTUP_TRACE"] = "1"
            return e

        data_dir = os.path.join(work, f"data-{a.entities}")
        os.makedirs(data_dir, exist_ok=True)
        if cached(data_dir) < a.entities:
            p = subprocess.Popen([a.app[0].split()[0]], env=env(data_dir, False), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: cached(data_dir) >= a.entities, 60 + a.entities / 1000, "the first launch to fill the cache")
            finally:
                stop(p)
        results = {app: [] for app in a.app}
        for r in range(a.runs):
            for app in a.app:
                binary, *extra = app.split()
                e = env(data_dir, True)
                e.update(kv.split("=", 1) for kv in extra)
                p = subprocess.Popen(a.wrap.split() + [binary], env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                marks = {}
                lines = queue.Queue()
                threading.Thread(target=lambda: [lines.put(l) for l in p.stderr], daemon=True).start()
                try:
                    # Until the last chunk is in, or (a cache small enough for the
                    # first piece: no chunks) the first paint and 2 s of quiet; at
                    # most 60 s.
                    end = time.time() + 60
                    while time.time() < end:
                        try:
                            line = lines.get(timeout=2)
                        except queue.Empty:
                            if "ui: first piece painted (frame)" in marks:
                                break
                            continue
                        m = MARK.search(line)
                        if m:
                            marks.setdefault(m.group(1).strip(), float(m.group(2)))
                        if "last chunk applied" in line:
                            break
                finally:
                    stop(p)
                results[app].append(marks)
                print(f"run {r + 1} {app}: first paint "
                      f"{marks.get('ui: first piece painted (frame)', float('nan')):.0f} ms", file=sys.stderr)
        for app in a.app:
            print(f"\n== {app} ({a.entities} entities, {a.runs} runs; medians, ms since process start)")
            names = []
            for m in results[app]:
                for k in sorted(m, key=m.get):
                    if k not in names:
                        names.append(k)
            rows = [(statistics.median([m[k] for m in results[app] if k in m]), k) for k in names]
            for v, k in sorted(rows):
                print(f"  {k:<36} {v:8.1f}")
        json.dump({k: v for k, v in results.items()}, open(os.path.join(work, "last.json"), "w"), indent=1)
    finally:
        for p in reversed(procs):
            stop(p)


if __name__ == "__main__":
    main()
