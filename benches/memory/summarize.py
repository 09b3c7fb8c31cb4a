#!/usr/bin/env python3
"""Group measure.py's idle breakdown (--out FILE.json, run with --top 1000) by
what holds the memory, per process, in MiB of PSS.

Usage: summarize.py FILE.json...

Groups: anonymous memory ([heap], [anon], [stack]: malloc arenas, bmalloc/libpas
and the JS heap, thread stacks), shared memory (memfd, SysV), the app's binary,
WebKit + JavaScriptCore, Mesa + LLVM (EGL/GL, loaded even with hardware
acceleration off), the other libraries, other files (fonts, ICU data, caches).
Each library is split into its file pages and its private ("anon") pages
(relocated data, .bss).
"""

import json
import sys


def group(name):
    if name in ("[heap]", "[anon]", "[stack]") or name.startswith("[anon:") or name.startswith("[stack:"):
        return "anonymous"
    if name.startswith("[memfd") or name.startswith("/SYSV") or name.startswith("/dev/shm") or "(deleted)" in name:
        return "shared memory"
    if "libwebkit2gtk" in name or "libjavascriptcoregtk" in name:
        return "WebKit+JSC libs"
    if "libLLVM" in name or "/dri/" in name or "libgallium" in name or "libEGL" in name or "libGL" in name or "libgbm" in name:
        return "Mesa+LLVM"
    if ".so" in name:
        return "other libs"
    if name.startswith("["):
        return "kernel ([vdso]...)"
    if name.endswith("/pulse") or name.endswith("/blank"):
        return "app binary"
    return "other files"


def main(paths):
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        print(f"== {r.get('label')} {' '.join(r.get('env', []))}: idle {r['idle_total_mib']:.1f} MiB")
        for p in r["idle"]:
            groups = {}
            for m in p["mappings"]:
                g = groups.setdefault(group(m["map"]), [0, 0])
                g[0] += m.get("anon", 0)
                g[1] += m.get("file", 0) + m.get("shmem", 0)
            shown = sum(a + b for a, b in groups.values())
            parts = ", ".join(
                f"{g} {(a + b) / 1024:.1f}" + (f" ({a / 1024:.1f} private)" if a and b else "")
                for g, (a, b) in sorted(groups.items(), key=lambda kv: -sum(kv[1]))
            )
            rest = (p["pss_kib"] - shown) / 1024
            print(f"  {p['name']} {p['pss_kib'] / 1024:.1f}: {parts}" + (f", not listed {rest:.1f}" if rest > 0.05 else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
