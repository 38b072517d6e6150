"""Processes under benchmark, pinned to a core, and what /proc says about them.

The Hearth server, the floor relay and redis-server run on the server core
(``SERVER_CPU``); the load runs in the bench process on the other core. The
launch and readiness logic is the test suite's (``tests/support/procs.py``);
this module only adds ``taskset`` and the /proc readers.
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.procs import RedisServer, Server, free_port, wait_until  # noqa: E402

__all__ = ["Pinned", "PinnedRedis", "RedisServer", "free_port", "wait_until", "cpu_seconds",
           "machine_ticks", "steal_pct",
           "rss_bytes", "pin_prefix", "pin_self", "raise_nofile", "core_contention",
           "counted_script", "counted_scripts",
           "callgrind_total", "switches", "hold_gc",
           "SERVER_CPU", "LOAD_CPU"]

SERVER_CPU = 0
LOAD_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
HAS_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` to put before a command, or nothing without taskset."""
    return ["taskset", "-c", str(cpu)] if cpu is not None and HAS_TASKSET else []


class Pinned(Server):
    """``python -m chatserver`` (or the floor) started under ``taskset -c CPU``.

    ``taskset`` execs the Python process, so ``proc.pid`` is the server's pid
    (valgrind, as ``wrap``, runs the interpreter in its own process too).
    """

    def __init__(self, *args: str, cpu: int | None = SERVER_CPU, floor: bool = False,
                 root: Path = ROOT, wrap: tuple[str, ...] = (), ready_s: float = 20,
                 **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.cpu = cpu
        self.floor = floor
        self.root = root  # the source tree whose chatserver runs (compare.py)
        self.wrap = wrap  # a command the interpreter runs under (instructions.py: valgrind)
        self.ready_s = ready_s

    def start(self) -> Pinned:
        if self.floor:
            target = [str(ROOT / "loadtests" / "floor.py")]
        else:
            target = ["-m", "chatserver"]
        cmd = [*pin_prefix(self.cpu), *self.wrap, sys.executable, *target,
               "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(self.healthy, self.ready_s, f"server on {self.port}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


class PinnedRedis(RedisServer):
    """redis-server with all its threads moved to the server core after start."""

    def __init__(self, cpu: int | None = SERVER_CPU) -> None:
        super().__init__()
        self.cpu = cpu

    def start(self) -> PinnedRedis:
        super().start()
        if self.cpu is not None and HAS_TASKSET and self.proc is not None:
            subprocess.run(["taskset", "-a", "-p", "-c", str(self.cpu), str(self.proc.pid)],
                           stdout=subprocess.DEVNULL, check=False)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(all the cores' ticks, the ticks the hypervisor took from them: ``steal``) since
    boot, from the ``cpu`` line of ``/proc/stat``."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                user, nice, system, idle, iowait, irq, softirq, steal = map(int, line.split()[1:9])
                return user + nice + system + idle + iowait + irq + softirq + steal, steal
    raise RuntimeError("/proc/stat has no cpu line")


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """The share of the cores' time the hypervisor took between two ``machine_ticks``,
    in percent; None when no tick passed."""
    ticks = after[0] - before[0]
    return round(100 * (after[1] - before[1]) / ticks, 1) if ticks > 0 else None


def _status(pid: int | str, *names: str) -> dict[str, int]:
    """These fields of ``/proc/PID/status``, by name, each as its number."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in names:
                found[name] = int(value.split()[0])
    return found


def switches(pid: int | str = "self") -> tuple[int, int]:
    """A process's context switches so far: (voluntary, involuntary). Voluntary: it
    waited (in epoll, for its sockets); involuntary: the scheduler took the core."""
    counts = _status(pid, "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
    return counts["voluntary_ctxt_switches"], counts["nonvoluntary_ctxt_switches"]


def rss_bytes(pid: int | str = "self") -> int:
    return _status(pid, "VmRSS").get("VmRSS", 0) * 1024  # VmRSS is in kB


def pin_self(cpu: int = LOAD_CPU) -> bool:
    if not HAS_TASKSET:
        return False
    os.sched_setaffinity(0, {cpu})
    return True


def hold_gc() -> None:
    """No automatic collection in the load's process: call ``gc.collect()`` between
    windows instead. Its full collections took 10-53 ms (2026-12-07, a
    ``loadtests/gcwatch`` run of bench.py: six in one run), and every frame in flight
    meanwhile counts that pause as the server's latency; one of 50 ms in a 5 s window
    at 3,000 pairings a second holds 1 % of its requests, enough to put its p99 over
    10 ms."""
    gc.disable()


def raise_nofile(want: int = 65536) -> int:
    """Raise the open-file limit (inherited by the servers started afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def core_contention(pairs: int = 8, steps: int = 2_000_000) -> float | None:
    """How much a busy Python loop on the load core slows the same loop on the
    server core: 1.0 when the cores are independent, more when they share a
    physical core or a frequency budget (then the load slows the server, Hearth
    and floor alike, and pinning does not isolate them). The ratio of the
    medians of ``pairs`` alternated timings (a single pair is at the mercy of the
    host's noise). None without taskset."""
    if not HAS_TASKSET:
        return None
    work = f"import time\nt = time.perf_counter()\nfor _ in range({steps}): pass\n" \
           "print(time.perf_counter() - t)"

    def timed() -> float:
        out = subprocess.run([*pin_prefix(SERVER_CPU), sys.executable, "-c", work],
                             capture_output=True, text=True, check=True, timeout=60)
        return float(out.stdout)

    alone: list[float] = []
    loaded: list[float] = []
    for _ in range(pairs):
        alone.append(timed())
        busy = subprocess.Popen([*pin_prefix(LOAD_CPU), sys.executable, "-c",
                                 "while True: pass"])
        try:
            time.sleep(0.3)  # until the busy loop runs (the interpreter's start-up)
            loaded.append(timed())
        finally:
            busy.kill()
            busy.wait()
    return round(statistics.median(loaded) / statistics.median(alone), 2)


def counted_script(script: str, *args: str) -> int:
    """User-space instructions of ``python script args`` run to its end under
    callgrind, with the hash seed fixed (set and dict order move the count by up
    to 10 %): what ``core_cost.py`` and ``safety_cost.py`` take the difference of."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "callgrind.out"
        subprocess.run(["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, script, *args], check=True, capture_output=True,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
        total = callgrind_total(out)
    if total is None:
        raise RuntimeError(f"callgrind wrote no complete dump for {script}")
    return total


def counted_scripts(script: str, *runs: Sequence[str]) -> list[int]:
    """``counted_script`` of ``script`` with each of ``runs`` as its arguments, all at
    once: callgrind counts instructions, which the other runs do not move, so the
    two runs a difference needs take about the time of one on two cores."""
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        return list(pool.map(lambda args: counted_script(script, *args), runs))


def callgrind_total(dump: Path) -> int | None:
    """The instructions a callgrind dump counted (its ``summary:`` line), or None while
    the dump is incomplete: callgrind writes ``summary:`` among the first lines and
    ``totals:`` as the last."""
    total = None
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            total = int(line.split()[1])
        elif line.startswith("totals:"):
            return total
    return None
