"""Which of a package's modules run compiled: shared by ``matching`` and ``chatserver``.

Each package lists its hot modules in ``NATIVE``; ``setup.py`` compiles them to C
with mypyc (``make native``), each package in a build of its own, into extensions
beside their sources (``talk__mypyc...so`` holds the code, ``talk...so`` loads it).
Python imports a compiled module before its source when both are present, so a
compiled module older than its source would run code that is no longer there. If
any compiled module of a package is older than a source of that package, or
``HEARTH_PURE=1`` is set, every module of the package is imported from its source
instead (with a warning for the stale case): its compiled modules expect each
other, all or none. This module itself is never compiled: it decides.
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


class SourceOnly(MetaPathFinder):
    """Finds one package's modules in their ``.py`` files only, never compiled."""

    def __init__(self, package: str, here: Path) -> None:
        self._package = package
        self._finder = FileFinder(str(here), (SourceFileLoader, SOURCE_SUFFIXES))

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] != self._package or fullname == self._package:
            return None
        return self._finder.find_spec(fullname)


class Compiled:
    """The compiled modules of one package (``here``, whose hot modules are ``native``)."""

    def __init__(self, package: str, here: Path, native: tuple[str, ...]) -> None:
        self.package = package
        self.here = here
        self.native = native

    def files(self) -> dict[str, Path]:
        """The modules of ``native`` that have a compiled file here, and its path."""
        # "talk.cpython-311-x86_64-linux-gnu.so" is talk's; "talk__mypyc...so", its code.
        found = {path.name.split(".", 1)[0]: path for path in self.here.glob("*.so")}
        return {name: found[name] for name in self.native if name in found}

    def stale(self) -> list[str]:
        """The compiled modules older than a source of the package: their own, or one
        whose types they were compiled against (Python would run the old code)."""
        built = self.files()
        if not built:  # nothing compiled: no source's time to look at
            return []
        newest = max(p.stat().st_mtime for p in self.here.glob("*.py")
                     if p.name != "__init__.py")
        return [name for name, path in built.items() if path.stat().st_mtime < newest]

    def choose(self) -> None:
        """Import the package's modules from their sources if asked to, or if its
        build is stale; called by the package's ``__init__`` before any import."""
        if os.environ.get("HEARTH_PURE") == "1":
            sys.meta_path.insert(0, SourceOnly(self.package, self.here))
            return
        old = self.stale()
        if old:
            warnings.warn(f"compiled modules older than their source ({', '.join(old)}): "
                          "running the Python sources; `make` compiles them again",
                          stacklevel=3)
            sys.meta_path.insert(0, SourceOnly(self.package, self.here))
