"""What the machine takes from a process that does nothing but read the clock.

    python loadtests/stalls.py [--seconds 60] [--over-ms 2]

One process a core (``taskset``), each in a loop that reads ``time.perf_counter()``
and notes every gap between two reads longer than ``--over-ms``: time the
process was not running, though it never waits. Run it with the machine
otherwise idle. Gaps that come on every core at once are most likely the
whole virtual machine stopped; on a host that does not account them as
``steal`` in ``/proc/stat`` this is the only way to see them. Measured on
2026-12-07 (docs/performance-log.md, "small hours"): at 3,000 pairings a
second a 25 ms gap holds ~75 requests, and the catch-up after it more, against
the 150 that a 5 s window's p99 allows over 10 ms. It watches the cores it may
run on, so ``taskset -c 0`` watches core 0 alone and leaves the other idle: on
the morning's host (docs/performance-log.md, "morning") the 100 ms stops came
only while every core ran flat out. ``--busy-core 1 --busy-pct 80`` keeps core 1
busy 80 % of every 10 ms (spinning, then sleeping the rest) while the cores the
tool may run on are watched: with ``taskset -c 0``, how core 0 fares beside a
partly busy neighbour (the morning's table). Prints, per core, the gaps by size
and the worst with when they came, and the share of the time the busy core ran;
never judges.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from procs import pin_prefix

BINS_MS = (2, 5, 10, 20, 50)


def watch(seconds: float, over_ms: float) -> dict[str, object]:
    """The gaps this process saw: ``(start s since the loop began, ms)``, all over
    ``over_ms``, and the wall-clock time the loop began."""
    threshold = over_ms / 1000
    wall0 = time.time()
    start = last = time.perf_counter()
    end = start + seconds
    gaps: list[tuple[float, float]] = []
    while last < end:
        now = time.perf_counter()
        if now - last > threshold:
            gaps.append((round(last - start, 3), round((now - last) * 1000, 2)))
        last = now
    return {"wall0": wall0, "gaps": gaps}


def spin(seconds: float, busy_pct: float, period_s: float = 0.01) -> dict[str, float]:
    """Keep this process running ``busy_pct`` % of every ``period_s`` (spinning) and
    sleeping the rest, for ``seconds``; the share of the time it ran."""
    busy_s = period_s * busy_pct / 100
    cpu0, start = time.process_time(), time.perf_counter()
    end = start + seconds
    cycle = start
    while cycle < end:
        while time.perf_counter() < cycle + busy_s:
            pass
        cycle += period_s
        rest = cycle - time.perf_counter()
        if rest > 0:
            time.sleep(rest)
    return {"ran": (time.process_time() - cpu0) / (time.perf_counter() - start)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--over-ms", type=float, default=2.0, help="the smallest gap noted")
    p.add_argument("--busy-core", type=int, help="a core, not one watched, to keep busy")
    p.add_argument("--busy-pct", type=float, default=100.0,
                   help="the share of every 10 ms the busy core spins")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spin", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(watch(args.seconds, args.over_ms)))
        return 0
    if args.spin:
        print(json.dumps(spin(args.seconds, args.busy_pct)))
        return 0
    cores = sorted(os.sched_getaffinity(0))
    spinner = None
    if args.busy_core is not None:
        if args.busy_core in cores:
            p.error(f"core {args.busy_core} is watched; watch others (taskset -c) to keep it "
                    "busy")
        if not 0 <= args.busy_core < (os.cpu_count() or 1):
            p.error(f"there is no core {args.busy_core}")
        spinner = subprocess.Popen([*pin_prefix(args.busy_core), sys.executable, __file__,
                                    "--spin", "--seconds", str(args.seconds),
                                    "--busy-pct", str(args.busy_pct)],
                                   stdout=subprocess.PIPE, text=True)
    children = [subprocess.Popen([*pin_prefix(core), sys.executable, __file__,
                                  "--child", "--seconds", str(args.seconds),
                                  "--over-ms", str(args.over_ms)],
                                 stdout=subprocess.PIPE, text=True) for core in cores]
    seen = {core: json.loads(child.communicate()[0]) for core, child in zip(cores, children,
                                                                          strict=True)}
    wall0 = min(float(s["wall0"]) for s in seen.values())
    at: dict[int, list[float]] = {}
    for core, s in seen.items():
        gaps: list[list[float]] = s["gaps"]  # type: ignore[assignment]
        sizes = [ms for _, ms in gaps]
        counts = ", ".join(f">{b} ms: {sum(1 for ms in sizes if ms > b)}" for b in BINS_MS
                           if b >= args.over_ms)
        worst = sorted(gaps, key=lambda g: -g[1])[:5]
        shift = float(s["wall0"]) - wall0
        at[core] = [round(t + shift, 2) for t, ms in gaps if ms > 10]
        print(f"core {core}: {len(gaps)} gaps in {args.seconds:.0f} s ({counts}); worst "
              + (", ".join(f"{ms:.1f} ms at {t + shift:.2f} s" for t, ms in worst) or "none"))
    if spinner is not None:
        ran = json.loads(spinner.communicate()[0])["ran"]
        print(f"core {args.busy_core} kept busy {args.busy_pct:.0f} % of every 10 ms: it ran "
              f"{100 * ran:.0f} % of the time")
    if len(at) > 1:
        first, *rest = at.values()
        together = [t for t in first if all(any(abs(t - u) < 0.05 for u in o) for o in rest)]
        print(f"gaps over 10 ms on every core within 50 ms of each other: {len(together)}"
              + (f" (at {', '.join(f'{t:.2f}' for t in together[:10])} s)" if together else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
