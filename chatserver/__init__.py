"""Hearth: real-time anonymous peer-support chat. See docs/architecture.md.

The modules in :data:`NATIVE` are also compiled to C with mypyc (``setup.py``;
``make`` does it before ``run``, ``test``, ``bench`` and ``loadtest``): the same
source, run without the interpreter's dispatch, for about 11 % less CPU a
delivered message (docs/performance.md). Python imports a compiled module
before its source when both are present, so a compiled module older than its
source would run code that is no longer there. If any is older than a source
of the package, or ``HEARTH_PURE=1`` is set, every module of the package
is imported from its source instead (with a warning for the stale case), and
``make`` compiles them again.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, ModuleSpec, SourceFileLoader
from pathlib import Path
from types import ModuleType

# The modules a delivered message, a cross-node event or a pairing runs through.
NATIVE = ("protocol", "connection", "endpoint", "talk", "rooms", "seats", "contact", "risk",
          "metrics", "node", "relay", "relay_redis", "crossnode", "coalesce", "moderation",
          "home", "pairing")

HERE = Path(__file__).resolve().parent


def compiled() -> dict[str, Path]:
    """The modules of :data:`NATIVE` that have a compiled file here, and its path."""
    # "talk.cpython-311-x86_64-linux-gnu.so" is talk's; "talk__mypyc...so", its code.
    found = {path.name.split(".", 1)[0]: path for path in HERE.glob("*.so")}
    return {name: found[name] for name in NATIVE if name in found}


def stale() -> list[str]:
    """The compiled modules older than a source of the package: their own, or one
    whose types they were compiled against (Python would run the old code)."""
    built = compiled()
    if not built:  # nothing compiled: no source's time to look at
        return []
    newest = max(p.stat().st_mtime for p in HERE.glob("*.py") if p.name != "__init__.py")
    return [name for name, path in built.items() if path.stat().st_mtime < newest]


class SourceOnly(MetaPathFinder):
    """Finds this package's modules in their ``.py`` files only, never compiled."""

    def __init__(self) -> None:
        self._finder = FileFinder(str(HERE), (SourceFileLoader, SOURCE_SUFFIXES))

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] != __name__ or fullname == __name__:
            return None
        return self._finder.find_spec(fullname)


def _choose() -> None:
    if os.environ.get("HEARTH_PURE") == "1":
        sys.meta_path.insert(0, SourceOnly())
        return
    old = stale()
    if old:
        warnings.warn(f"compiled modules older than their source ({', '.join(old)}): running "
                      "the Python sources; `make` compiles them again", stacklevel=2)
        sys.meta_path.insert(0, SourceOnly())


_choose()
