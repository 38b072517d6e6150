"""Log every garbage collection over 2 ms, and every full one, of each Python process.

    HEARTH_GCWATCH=build/gcwatch PYTHONPATH=loadtests/gcwatch \
        .venv/bin/python loadtests/bench.py --only saturation

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``, so the servers that
the bench and ``compare.py`` start inherit it. Each process appends to
``$HEARTH_GCWATCH/gc_<pid>.log``: its command line once, then one line per logged
collection (wall time, generation, milliseconds, objects collected). A measurement
aid only (docs/performance.md); without ``HEARTH_GCWATCH`` it does nothing.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from typing import Any

_DIR = os.environ.get("HEARTH_GCWATCH")

if _DIR:
    os.makedirs(_DIR, exist_ok=True)
    _log = open(os.path.join(_DIR, f"gc_{os.getpid()}.log"), "a", buffering=1)
    _state = {"start": 0.0, "named": False}

    def _watch(phase: str, info: dict[str, Any]) -> None:
        if not _state["named"]:  # sys.argv is complete only once the program runs
            _log.write("argv " + " ".join(sys.argv)[:160] + "\n")
            _state["named"] = True
        if phase == "start":
            _state["start"] = time.perf_counter()
            return
        ms = (time.perf_counter() - float(_state["start"])) * 1000
        if ms > 2 or info["generation"] == 2:
            _log.write(f"{time.time():.3f} gen{info['generation']} {ms:.1f} ms "
                       f"collected={info['collected']}\n")

    gc.callbacks.append(_watch)
