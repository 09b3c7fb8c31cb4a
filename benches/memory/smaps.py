#!/usr/bin/env python3
"""Where a process's PSS is: /proc/PID/smaps grouped by mapping (issue 12).

Usage: smaps.py [--json] [--top N] PID...

Per process: PSS, Pss_Anon, Pss_File, Pss_Shmem (from smaps_rollup), then the
mappings grouped by what they map: `[heap]`, anonymous memory (`[anon]`, which
holds glibc's non-main arenas, thread stacks and mmap'd allocations), `[stack]`,
each file (shared libraries, fonts, the ICU data, the app's binary, SQLite
files...), largest PSS first. A mapping's PSS is split into its anonymous part
(private copies: a library's relocated data, .bss) and its file part.

Only reads /proc; a process that exits meanwhile is skipped.
"""

import json
import os
import re
import sys
from collections import defaultdict

HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                out[parts[0][:-1]] = int(parts[1])
    return out


def name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        return os.path.basename(argv0) or "?"
    except OSError:
        return "?"


def mappings(pid):
    """{mapping name: {"pss": kB, "anon": kB, "file": kB, "rss": kB}}"""
    groups = defaultdict(lambda: defaultdict(int))
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if HEADER.match(line):
                fields = line.split(None, 5)
                path = fields[5].strip() if len(fields) > 5 else ""
                if not path:
                    path = "[anon]"
                elif path.startswith("/memfd:"):
                    path = "[memfd " + path[7:].split(" ")[0] + "]"
                current = groups[path]
                current["mappings"] += 1
                continue
            parts = line.split()
            if current is None or len(parts) < 1:
                continue
            key = parts[0][:-1]
            v = int(parts[1]) if len(parts) >= 3 and parts[2] == "kB" else 0
            if key in ("Pss", "Rss", "Anonymous", "Pss_Shmem"):
                current[key] += v
            elif key == "VmFlags":
                # Per mapping the kernel gives Anonymous (resident anonymous pages:
                # private copies, never shared with another process after a fork
                # here, so their PSS is their size); the rest of the PSS is the
                # file's (or shmem's) share.
                anon = min(_take(current, "Anonymous"), current["Pss"])
                current["anon"] += anon
                current["pss"] += _take(current, "Pss")
                current["shmem"] += _take(current, "Pss_Shmem")
                current["file"] = current["pss"] - current["anon"] - current["shmem"]
                current["rss"] += _take(current, "Rss")
    return {k: {x: y for x, y in v.items() if x[0].islower()} for k, v in groups.items()}


def _take(d, key):
    v = d.get(key, 0)
    d[key] = 0
    return v


def report(pid, top):
    r = rollup(pid)
    m = mappings(pid)
    return {
        "pid": pid,
        "name": name(pid),
        "pss_kib": r.get("Pss", 0),
        "rss_kib": r.get("Rss", 0),
        "pss_anon_kib": r.get("Pss_Anon", 0),
        "pss_file_kib": r.get("Pss_File", 0),
        "pss_shmem_kib": r.get("Pss_Shmem", 0),
        "mappings": sorted(
            ({"map": k, **v} for k, v in m.items()),
            key=lambda x: -x.get("pss", 0),
        )[:top],
    }


def main(argv):
    as_json = "--json" in argv
    argv = [a for a in argv if a != "--json"]
    top = 15
    if "--top" in argv:
        i = argv.index("--top")
        top = int(argv[i + 1])
        del argv[i : i + 2]
    reports = []
    for pid in argv:
        try:
            reports.append(report(int(pid), top))
        except (OSError, ValueError):
            continue
    if as_json:
        json.dump(reports, sys.stdout, indent=1)
        print()
        return
    total = sum(r["pss_kib"] for r in reports)
    print(f"total PSS {total / 1024:.1f} MiB over {len(reports)} processes")
    for r in reports:
        print(
            f"\n{r['name']} (pid {r['pid']}): PSS {r['pss_kib'] / 1024:.1f} MiB "
            f"(anon {r['pss_anon_kib'] / 1024:.1f}, file {r['pss_file_kib'] / 1024:.1f}, "
            f"shmem {r['pss_shmem_kib'] / 1024:.1f}); RSS {r['rss_kib'] / 1024:.1f}"
        )
        for m in r["mappings"]:
            print(
                f"  {m.get('pss', 0) / 1024:7.1f} MiB  anon {m.get('anon', 0) / 1024:6.1f}"
                f"  file {m.get('file', 0) / 1024:6.1f}  shmem {m.get('shmem', 0) / 1024:5.1f}"
                f"  x{m.get('mappings', 0):<4} {m['map']}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
