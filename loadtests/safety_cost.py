"""What the safety checks cost a message, alone: contact masking and risk scoring.

    python loadtests/safety_cost.py                    # timeit, warm, us a message
    python loadtests/safety_cost.py --instructions     # callgrind: instructions a message
    python loadtests/safety_cost.py --texts labelled   # the labelled set instead

The texts are the bench's (``texts.py``: ordinary chat, what the relay
scenarios send) or the scorer's labelled set (``tests/data/risk_labelled.tsv``).
``--instructions`` runs this script twice under ``valgrind --tool=callgrind``
(``procs.counted_scripts``, the two at once), each calling the function once
per text to warm its caches, then ``--rounds`` times more over the texts in
one run and not at all in the other, and divides the difference by the calls
made: user-space instructions a message, the same from run to run (the hash
seed is fixed), whatever else the host does (CPU time on this machine moves
by +-10 %; docs/performance.md, "Noise"). Warm figures both: in the server
the caches are colder and each costs more (docs/performance.md).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "loadtests"))

from procs import counted_scripts  # noqa: E402
from texts import TEXTS  # noqa: E402

from chatserver import contact, risk  # noqa: E402

CHECKS: dict[str, Callable[[str], object]] = {
    "mask": contact.mask_contacts,
    "score": lambda text: risk.score(text, "en"),
}


def texts(which: str) -> list[str]:
    if which == "bench":
        return list(TEXTS)
    rows = (ROOT / "tests" / "data" / "risk_labelled.tsv").read_text(encoding="utf-8")
    out = []
    for line in rows.splitlines():
        if line and not line.startswith("#"):
            out.append(line.split("\t")[-1])
    return out


def run_calls(name: str, corpus: list[str], rounds: int) -> None:
    check = CHECKS[name]
    for _ in range(rounds + 1):  # the first round warms the caches (and is in both runs)
        for text in corpus:
            check(text)


def counted(name: str, which: str, rounds: int) -> float:
    """Instructions a call of ``name``, from two callgrind runs of this script."""
    runs = counted_scripts(__file__, *(("--call", name, "--texts", which, "--rounds", str(n))
                                       for n in (rounds, 0)))
    return (runs[0] - runs[1]) / (rounds * len(texts(which)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", choices=("bench", "labelled"), default="bench")
    p.add_argument("--instructions", action="store_true", help="count them under callgrind")
    p.add_argument("--rounds", type=int, default=None, help="calls per text")
    p.add_argument("--only", choices=tuple(CHECKS), action="append")
    p.add_argument("--call", choices=tuple(CHECKS), help=argparse.SUPPRESS)  # under callgrind
    args = p.parse_args()
    corpus = texts(args.texts)
    if args.call:
        run_calls(args.call, corpus, args.rounds)
        return 0
    if args.instructions and shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    for name in args.only or CHECKS:
        if args.instructions:
            rounds = args.rounds or 40
            cost = counted(name, args.texts, rounds)
            print(f"{name:6s} {cost:10,.0f} instructions a message "
                  f"({len(corpus)} {args.texts} texts x {rounds}, callgrind)")
        else:
            rounds = args.rounds or 2000
            best = min(timeit.repeat(functools.partial(run_calls, name, corpus, rounds),
                                     number=1, repeat=5))
            print(f"{name:6s} {best / (rounds * len(corpus)) * 1e6:8.2f} us a message "
                  f"({len(corpus)} {args.texts} texts x {rounds}, best of 5, warm)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
