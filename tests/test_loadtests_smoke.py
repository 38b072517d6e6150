"""The load tools run to the end and say something; no timing is asserted
(timings belong in ``make bench``, never in pass/fail tests)."""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import chatserver

ROOT = Path(__file__).resolve().parent.parent


def _tool(*args: str, timeout: float = 60, env: dict[str, str] | None = None,
          cores: set[int] | None = None, status: int = 0) -> subprocess.CompletedProcess[str]:
    """Run a load tool (``loadtests/...`` and its arguments) to the end, ending with
    ``status`` (successfully unless told); on ``cores`` only, when given (as
    ``taskset -c`` would)."""
    pin = None if cores is None else (lambda: os.sched_setaffinity(0, cores))
    run = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, env=env, preexec_fn=pin)
    assert run.returncode == status, run.stderr[-2000:]
    return run


def test_bench_quick_prints_a_line_per_scenario_and_a_table(tmp_path: Path) -> None:
    """bench.py --quick finishes and prints every scenario as JSON, then the table."""
    out = tmp_path / "bench.jsonl"
    run = _tool(
        "loadtests/bench.py", "--quick", "--json", str(out))
    scenarios = {json.loads(line)["scenario"] for line in out.read_text().splitlines()}
    assert {"machine", "same_node_fixed", "same_node_saturation", "slow_reader", "idle",
            "matching_redis_direct", "matching_redis_server", "cross_node"} <= scenarios
    cross = [json.loads(line) for line in out.read_text().splitlines()
             if json.loads(line)["scenario"] == "cross_node"][0]
    assert cross["hearth"]["delivered"] > 0 and cross["floor"]["delivered"] > 0, cross
    # The floor split over two processes: both measured, and (nearly) every message
    # delivered to both members, on either floor.
    split = cross["split_floor"]
    assert split["sent"] > 0 and split["delivered"] >= 0.99 * 2 * split["sent"], split
    assert len(split["cpu_us_per_msg_each"]) == 2, split
    # Context switches a second, [voluntary, involuntary], of each node and of Redis.
    assert len(cross["hearth"]["switches_per_s_each"]) == 3, cross
    # The paced matching phase counts what it asked and how much of it went out late.
    (match,) = [json.loads(line) for line in out.read_text().splitlines()
                if json.loads(line)["scenario"] == "matching_redis_server"]
    assert match["paced_requests"] > 0 and 0 <= match["paced_late"] <= match["paced_requests"]
    # Every scenario says how much the hypervisor took while it ran; the title the most.
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(0 <= line["steal_pct"] <= 100 for line in lines[1:]), lines
    assert "steal) in one scenario" in run.stdout
    assert "| scenario" in run.stdout


def test_locust_runs_against_a_real_server(tmp_path: Path) -> None:
    """A short headless Locust run against one server completes and writes its report."""
    run = subprocess.run(
        [sys.executable, "loadtests/run_locust.py", "--time", "8", "--users", "12",
         "--listeners", "3", "--single-only"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "== locust one-node: exit" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert (ROOT / "build" / "loadtest" / "one-node.html").stat().st_size > 0


def test_redis_calls_prints_each_kind_of_call() -> None:
    """redis_calls.py starts its own redis-server and prints a line per kind of call."""
    run = _tool("loadtests/redis_calls.py", "--calls", "20", "--repeat", "1")
    lines = run.stdout.splitlines()
    for label in ("redis-py SET", "redis-py pipeline of 1 SET", "redis-py EVALSHA",
                  "bare socket + hiredis SET", "PUBLISH, pipeline of 1", "PUBLISH, Redis.publish",
                  "PUBLISH, pool connection", "PUBLISH + get_message"):
        assert any(line.startswith(f"{label} ") and line.count("us/call") == 2
                   for line in lines), run.stdout


def test_pairing_rates_prints_a_line_per_rate_and_the_closed_loop() -> None:
    """pairing_rates.py starts its own redis-server and node, and prints for each rate
    and for the closed loop the pairs it got, their cost, Redis's reads and commands.
    ``--redis-cpu 1`` moves redis-server off the node's core (it says where it is)."""
    run = _tool(
        "loadtests/pairing_rates.py", "--rates", "20,40", "--seconds", "0.5",
        "--seekers", "6", "--listeners", "2", "--closed", "3", "--redis-cpu", "1", "--bursts")
    lines = run.stdout.splitlines()
    if _loadtool("procs").HAS_TASKSET:
        assert lines[0] == "redis-server on cores [1], the node on core 0", run.stdout
    else:  # no second core to pin it to: it still says where it runs
        assert lines[0].startswith("redis-server on cores ["), run.stdout
    costs = [line for line in lines if "us/pairing" in line]
    assert [line.split()[0] for line in costs] == ["20", "40", "closed"], run.stdout
    for line in costs:
        assert int(line.split("pairs/s")[0].split()[-1]) > 0, line
    commands = [line for line in lines if "commands a pairing:" in line]
    assert len(commands) == 3 and all("evalsha" in line for line in commands), run.stdout
    # Every pairing goes to Redis at least once (its request's script), at these
    # rates alone, as the seekers ask one at a time.
    reads = [float(line.split("Redis reads a pairing ")[1].split(";")[0]) for line in commands]
    assert all(r >= 1 for r in reads[:2]), run.stdout
    # The seekers' loop (relay.pair_until) counts what it sent and what timed out.
    assert all(" requests late; 0 timeouts;" in line for line in commands[:2]), run.stdout
    assert "0 timeouts;" in commands[2] and "late" not in commands[2], run.stdout
    # --bursts: each window says which of its 100 ms stretches held slow matches.
    stretches = [line for line in lines if "stretches of 100 ms held matches over 10 ms" in line]
    assert len(stretches) == 3, run.stdout


def test_bursts_names_the_stretches_that_held_slow_matches() -> None:
    relay = _loadtool("relay")
    tally = relay.Pairings(lat_ns=[1_000_000, 12_000_000, 30_000_000, 2_000_000],
                           done_s=[100.0, 100.05, 100.25, 100.26])
    assert _loadtool("pairing_rates").bursts(tally) == (
        "2 of 3 stretches of 100 ms held matches over 10 ms: 0.0s: 1 x 12 0.2s: 1 x 30")
    fast = relay.Pairings(lat_ns=[1_000_000], done_s=[5.0])
    assert _loadtool("pairing_rates").bursts(fast) == (
        "0 of 1 stretches of 100 ms held matches over 10 ms")


def _loadtool(name: str) -> Any:
    """A module of ``loadtests/`` (they import each other by bare name)."""
    sys.path.insert(0, str(ROOT / "loadtests"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "loadtests"))


def _rows(lines: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """The bench table's rows (report.rows) for these JSON lines."""
    rows: list[tuple[object, ...]] = _loadtool("report").rows(lines)
    return rows


_SIDE = {"cpu_us_per_msg": 50.0, "delivered_per_s": 4000, "p50_ms": 1.0, "p99_ms": 2.0}
_FIXED = {"scenario": "same_node_fixed", "rooms": 1000, "match_p50_ms": 1.0,
          "match_p99_ms": 2.0, "hearth": _SIDE, "floor": _SIDE}


def _saturation_rows(hearth_found: bool, floor_found: bool) -> list[tuple[object, ...]]:
    def side(delivered: int, found: bool) -> dict[str, object]:
        return {"delivered_per_s": delivered, "p99_ms": 5.0, "limit_found": found}

    line = {"scenario": "same_node_saturation", "rooms": 1000,
            "hearth": side(9000, hearth_found), "floor": side(10000, floor_found)}
    return [r for r in _rows([line]) if r[1].startswith("delivered msg/s")]


def test_a_saturation_search_that_found_no_limit_gets_no_verdict() -> None:
    """A search that ended on its last step with nothing failed measured a lower
    bound: 0.9x is then neither met nor missed, and the table says whose."""
    (found,) = _saturation_rows(True, True)
    assert found[4] == 0.9 and found[6] == "met"
    (unfound,) = _saturation_rows(True, False)
    assert unfound[6] == "-" and "floor: no limit found" in str(unfound[0])
    (neither,) = _saturation_rows(False, False)
    assert neither[6] == "-" and "Hearth and floor" in str(neither[0])


def test_a_pairing_through_a_node_is_set_against_the_floors_cost_of_its_frames() -> None:
    """The node's CPU a pairing is printed beside four of the floor's deliveries (the
    same frames: two in, four out), from the fixed-load run of the same bench."""
    server = {"scenario": "matching_redis_server", "pairs_per_s": 2500, "server_cpu_pct": 55.0,
              "redis_cpu_pct": 20.0,
              "match_p50_ms": 9.0, "match_p99_ms": 20.0, "paced_rate": 3000,
              "paced_pairs_per_s": 2400, "paced_p50_ms": 8.0, "paced_p99_ms": 19.0}
    (row,) = [r for r in _rows([_FIXED, server]) if r[1].startswith("node CPU us / pairing")]
    assert row[2:5] == (220.0, 200.0, 1.1)
    assert [r[2] for r in _rows([_FIXED, server]) if r[1].startswith("Redis CPU")] == [80.0]


def test_the_table_names_the_scenario_the_hypervisor_took_most_from() -> None:
    """Each scenario's line carries the steal since the line before; the title names
    the largest, so a run measured while the host was busy says so itself."""
    machine = {"scenario": "machine", "date": "d", "cpus": 2, "pinned": True,
               "loadavg": [0.1, 0.1, 0.1]}
    idle = {"scenario": "idle", "connections": 10, "hearth": {"rss_per_conn_kib": 21.0},
            "floor": {"rss_per_conn_kib": 24.0}}
    lines = [machine, {**idle, "steal_pct": 0.3}, {**_FIXED, "steal_pct": 27.4},
             {**idle, "steal_pct": 2.0}]
    title = _loadtool("report").render(lines).split("\n")[0]
    assert title.endswith("steal) in one scenario 27.4 % (same_node_fixed)"), title
    assert "steal" not in _loadtool("report").render([machine, _FIXED]).split("\n")[0]


def test_steal_is_the_hypervisors_share_of_the_ticks_between_two_readings() -> None:
    """machine_ticks reads /proc/stat's cpu line; steal_pct is its share of the ticks
    that passed between two readings, None when none did."""
    procs = _loadtool("procs")
    assert procs.steal_pct((1000, 40), (1200, 70)) == 15.0
    assert procs.steal_pct((1000, 40), (1000, 40)) is None
    before = procs.machine_ticks()
    end = time.monotonic() + 0.1
    while time.monotonic() < end:
        pass
    after = procs.machine_ticks()
    assert after[0] > before[0] >= before[1] >= 0 and after[1] >= before[1]
    assert 0 <= procs.steal_pct(before, after) <= 100


def test_the_paced_matching_row_says_how_many_requests_went_out_late() -> None:
    """A paced request whose seeker was still busy with the last one goes out late;
    the row says how many did, beside the rate it got (a line from before they were
    counted has neither)."""
    server = {"scenario": "matching_redis_server", "pairs_per_s": 2500, "server_cpu_pct": 55.0,
              "redis_cpu_pct": 20.0, "match_p50_ms": 9.0, "match_p99_ms": 20.0,
              "paced_rate": 3000, "paced_pairs_per_s": 2400, "paced_p50_ms": 8.0,
              "paced_p99_ms": 19.0}

    def paced_row(line: dict[str, object]) -> tuple[object, ...]:
        (row,) = [r for r in _rows([line]) if r[1].startswith("match p50 / p99 ms at")]
        return row

    assert paced_row(server)[1] == "match p50 / p99 ms at 3000 pairs/s (got 2400)"
    late = {**server, "paced_seekers": 150, "paced_late": 37, "paced_requests": 12000}
    row = paced_row(late)
    assert row[1] == ("match p50 / p99 ms at 3000 pairs/s (got 2400; 150 seekers, "
                      "37 of 12000 requests late)")
    assert row[2] == "8.0 / 19.0" and row[6] == "MISSED"


def test_cross_node_is_set_against_its_own_floor_windows_when_it_has_them() -> None:
    """The cross-node line's ratio is to the floor windows measured beside it; a line
    from before they were (no "floor") is still set against the same-node floor. The
    split floor, where a line has it, adds a row and leaves the verdict as it was."""
    cross = {"scenario": "cross_node", "available": True, "rooms": 1000,
             "hearth": {**_SIDE, "cpu_us_per_msg": 90.0}}

    def cross_row(line: dict[str, object]) -> tuple[object, ...]:
        (row,) = [r for r in _rows([_FIXED, line]) if r[1].startswith("CPU us / delivered msg")]
        return row

    assert cross_row(cross)[2:7] == (90.0, 50.0, 1.8, "<= 2x floor", "met")
    own = {**cross, "floor": {**_SIDE, "cpu_us_per_msg": 40.0}}
    assert cross_row(own)[2:7] == (90.0, 40.0, 2.25, "<= 2x floor", "MISSED")
    # The floor split over two processes is a row of its own, with no target, and
    # says what the split alone costs against the floor beside it.
    assert not [r for r in _rows([_FIXED, own]) if "split" in r[1]]
    split = {**own, "split_floor": {**_SIDE, "cpu_us_per_msg": 60.0}}
    assert cross_row(split)[2:7] == (90.0, 40.0, 2.25, "<= 2x floor", "MISSED")
    (row,) = [r for r in _rows([_FIXED, split]) if "split" in r[1]]
    assert "(1.5x the floor)" in str(row[1])
    assert row[2:7] == (90.0, 60.0, 1.5, "", "")


def test_relay_flush_prints_a_line_per_gap() -> None:
    """relay_flush.py starts its own redis-server and two relay processes per gap,
    and prints a line per gap."""
    run = _tool(
        "loadtests/relay_flush.py", "--gaps", "5,10", "--seconds", "0.5",
        "--rate", "200", timeout=90)
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["gap    5 ms", "gap   10 ms"], run.stdout
    assert all("flushes/s" in line and "ms CPU/s" in line for line in lines), run.stdout


def test_compare_prints_each_tree_and_the_floor_on_one_node_and_across_two() -> None:
    """compare.py measures a tree against the floor, as one node and (--cross) as two
    nodes and a Redis of its own, and prints a line for each (across two, a line more
    with each process's part)."""
    for cross in ([], ["--cross"]):
        run = _tool(
            "loadtests/compare.py", *cross, ".", "--rooms", "4", "--rate",
            "400", "--seconds", "1", "--repeat", "1", timeout=90)
        lines = run.stdout.splitlines()
        # Across two nodes, a second line splits the tree's CPU over its processes.
        expected = [str(ROOT), "node", "floor"] if cross else [str(ROOT), "floor"]
        assert [line.split()[0] for line in lines] == expected, run.stdout
        assert all("us/msg" in line for line in lines), run.stdout
        assert all("x floor" in line for line in lines if line.split()[0] != "node")
        if cross:
            split = lines[1].split(":", 1)[1].split("]")[0].strip(" [").split(",")
            assert len(split) == 3 and all(float(x) >= 0 for x in split), lines[1]


def test_soak_prints_checkpoints_and_ends_with_nothing_open() -> None:
    """soak.py on both backends runs its sessions, prints a line per checkpoint, and
    finds no room open on the node once the lost seats' resume windows have run out."""
    for backend in ([], ["--redis"]):
        run = _tool(
            "loadtests/soak.py", "--sessions", "30", "--every", "10",
            "--at-once", "10", *backend)
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        done = [line["sessions"] for line in lines[:-1]]  # sessions end a few at a time
        assert len(done) == 3 and done[-1] == 30 and all(n >= 10 * (i + 1)
                                                         for i, n in enumerate(done))
        assert lines[-1]["scenario"] == "soak_end" and lines[-1]["rooms"] == 0
        assert "MB per 1,000 sessions" in run.stderr


def test_instructions_counts_hearth_and_the_floor_under_callgrind(tmp_path: Path) -> None:
    """instructions.py runs Hearth and the floor under valgrind, counts a window of
    each, and keeps the dumps it was asked to; a bare relay executes less a message."""
    run = _tool(
        "loadtests/instructions.py", ".", "--rooms", "2", "--rate", "5",
        "--seconds", "2", "--keep", str(tmp_path), timeout=180)
    counts = {}
    for line in run.stdout.splitlines()[1:]:
        name, _, rest = line.partition(" net ")
        counts[name.strip()] = int(rest.split()[0].replace(",", ""))
    assert set(counts) == {f"0:{ROOT}", "floor"}, run.stdout
    assert 0 < counts["floor"] < counts[f"0:{ROOT}"], run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0.window0.callgrind", "floor.window0.callgrind"]


def test_match_instructions_counts_pairings_through_a_node_on_redis(tmp_path: Path) -> None:
    """match_instructions.py runs a node on its own Redis under valgrind, pairs and
    unpairs seekers, and prints instructions a pairing; the dump is kept as asked."""
    run = _tool(
        "loadtests/match_instructions.py", ".", "--pairs", "8",
        "--seekers", "2", "--listeners", "1", "--idle", "1", "--keep", str(tmp_path), timeout=180)
    line = run.stdout.splitlines()[1]
    assert line.startswith(f"0:{ROOT}  net "), run.stdout
    assert int(line.split()[2].replace(",", "")) > 0 and " pairs 8 " in line, run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["0.pairings.callgrind"]


def test_redis_instructions_counts_a_pairings_scripts_in_redis(tmp_path: Path) -> None:
    """redis_instructions.py runs redis-server under valgrind, pairs through the tree's
    own matcher, and prints redis-server's instructions a pairing; the dump is kept."""
    run = _tool(
        "loadtests/redis_instructions.py", ".", "--pairs", "12", "--few", "4",
        "--keep", str(tmp_path), timeout=180)
    line = run.stdout.splitlines()[1]
    assert line.startswith(f"0:{ROOT}  "), run.stdout
    assert int(line.split()[1].replace(",", "")) > 0, run.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["0.pairings.callgrind"]


def test_core_cost_prints_each_mode_timed_and_counted() -> None:
    """core_cost.py drives the real read loop in-process in each mode, timed, and
    counts a mode's instructions under valgrind; on the Python sources, as its
    core mode replaces functions that compiled modules would not see, which it
    refuses to do on them."""
    pure = {**os.environ, "HEARTH_PURE": "1"}
    run = _tool(
        "loadtests/core_cost.py", "--messages", "300", "--mode", "bare",
        "--mode", "core", "--mode", "full", timeout=120, env=pure)
    lines = run.stdout.splitlines()
    assert [line.split(" us a message, ")[1].split(" (")[0] for line in lines] == [
        "a bare relay loop on the same harness", "without masking and scoring", "as it is"]
    assert all(float(line.split()[0]) > 0 for line in lines)
    run = _tool(
        "loadtests/core_cost.py", "--messages", "100", "--instructions",
        "--mode", "core", timeout=180, env=pure)
    assert int(run.stdout.split()[0].replace(",", "")) > 0, run.stdout
    run = subprocess.run(
        [sys.executable, "loadtests/core_cost.py", "--messages", "100", "--mode", "core"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "HEARTH_PURE"})
    compiled = bool(chatserver.compiled()) and not chatserver.stale()
    assert (run.returncode != 0) == compiled, run.stderr[-2000:]
    assert ("HEARTH_PURE=1" in run.stderr) == compiled


def test_safety_cost_prints_each_check_timed_and_counted() -> None:
    """safety_cost.py times masking and scoring on the bench texts and on the labelled
    set, and counts a check's instructions under valgrind."""
    for texts in ("bench", "labelled"):
        run = _tool(
            "loadtests/safety_cost.py", "--texts", texts, "--rounds", "2")
        assert [line.split()[0] for line in run.stdout.splitlines()] == ["mask", "score"]
    run = _tool(
        "loadtests/safety_cost.py", "--instructions", "--only", "mask",
        "--rounds", "2", timeout=180)
    name, count = run.stdout.split()[:2]
    assert name == "mask" and int(count.replace(",", "")) > 0, run.stdout


def test_hold_gc_leaves_collection_to_the_load_between_windows() -> None:
    """The load's process makes no automatic collection: its pauses would count as the
    server's latency (bench.py and pairing_rates.py collect between windows)."""
    assert gc.isenabled()
    try:
        _loadtool("procs").hold_gc()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_stalls_prints_a_line_per_core() -> None:
    """stalls.py runs a clock-reading loop on each core and says what gaps it saw."""
    run = _tool("loadtests/stalls.py", "--seconds", "0.5", "--over-ms", "0.05", timeout=30)
    lines = run.stdout.splitlines()
    cores = sorted(os.sched_getaffinity(0))
    assert [line.split(":")[0] for line in lines[:len(cores)]] == [f"core {c}" for c in cores]
    for line in lines[:len(cores)]:
        assert " gaps in 0 s (" in line and "worst" in line, line
    if len(cores) > 1:
        assert lines[len(cores)].startswith("gaps over 10 ms on every core"), run.stdout


def test_stalls_watches_only_the_cores_it_may_run_on() -> None:
    """Under ``taskset -c 0`` stalls.py watches core 0 alone and leaves the others idle
    (docs/performance.md tells how to use that), so there is no every-core line."""
    core = min(os.sched_getaffinity(0))
    run = _tool("loadtests/stalls.py", "--seconds", "0.3", timeout=30, cores={core})
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"core {core}: "), run.stdout


def test_stalls_keeps_a_core_it_does_not_watch_busy() -> None:
    """``--busy-core`` spins on a core outside the watched ones for ``--busy-pct`` of
    every 10 ms and says how much it ran; a watched core, or one the machine lacks, is
    refused."""
    watched, busy = sorted(os.sched_getaffinity(0))[:2]  # the bench needs two cores too
    run = _tool("loadtests/stalls.py", "--seconds", "0.5", "--busy-core", str(busy),
                "--busy-pct", "80", timeout=30, cores={watched})
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"core {watched}: "), run.stdout
    prefix = f"core {busy} kept busy 80 % of every 10 ms: it ran "
    assert lines[1].startswith(prefix) and lines[1].endswith(" % of the time"), run.stdout
    assert 50 <= int(lines[1][len(prefix):].split()[0]) <= 100, run.stdout
    refused = _tool("loadtests/stalls.py", "--seconds", "0.1", "--busy-core", str(watched),
                    timeout=30, status=2)
    assert "is watched" in refused.stderr, refused.stderr
    absent = _tool("loadtests/stalls.py", "--seconds", "0.1", "--busy-core",
                   str(os.cpu_count()), timeout=30, cores={watched}, status=2)
    assert "no core" in absent.stderr, absent.stderr


def test_stalls_spin_runs_its_share_of_the_time() -> None:
    """The spinner runs about the share it is asked for, not all or none of it."""
    spin = _loadtool("stalls").spin
    half, idle = spin(0.3, 50)["ran"], spin(0.1, 0)["ran"]
    assert 0.3 <= half <= 0.7 and idle < 0.2, (half, idle)


def test_stalls_watch_notes_a_gap_it_was_not_running() -> None:
    """A pause the loop did not make itself (here a sleep from a signal handler stands
    in for the machine stopping) is noted with its length and when it began."""
    stalls = _loadtool("stalls")
    signal.signal(signal.SIGALRM, lambda *_: time.sleep(0.03))
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        seen = stalls.watch(0.3, 10.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    # The machine may stop the loop now and then on its own: those gaps are not ours.
    ours = [(at, ms) for at, ms in seen["gaps"] if 30 <= ms < 100 and 0.05 < at < 0.2]
    assert len(ours) == 1, seen["gaps"]
