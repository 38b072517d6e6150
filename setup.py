"""Packaging is in pyproject.toml; this file only adds the compiled modules.

``HEARTH_NATIVE=1 python setup.py build_ext --inplace`` (``make native``, which
``make run``, ``test``, ``bench`` and ``loadtest`` depend on) compiles the
modules of ``matching.NATIVE`` and of ``chatserver.NATIVE`` with mypyc, each into
an extension beside its source (``chatserver/talk__mypyc...so`` and a small
``talk...so`` that loads it). Each on its own rather than all in one: one library
for all, inside the package, gives the modules a wrong ``__file__`` (mypyc
expects such a library above the package), and measured no faster
(core_cost.py). The two packages are two builds: chatserver's modules call
matching's as Python modules, so that either package's build can be stale and
fall back to its sources (matching/native.py) without the other. Without
``HEARTH_NATIVE`` nothing is compiled and Hearth runs from its sources, as a
plain ``pip install`` does.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup


def native_modules(package: str) -> list[str]:
    """The package's NATIVE, read without importing it."""
    tree = ast.parse((Path(__file__).parent / package / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NATIVE":
            return [f"{package}/{name}.py" for name in ast.literal_eval(node.value)]
    raise RuntimeError(f"{package}.NATIVE not found")


ext_modules = []
if os.environ.get("HEARTH_NATIVE") == "1":
    from mypyc.build import mypycify

    for package in ("matching", "chatserver"):
        ext_modules += mypycify(native_modules(package), separate=True,
                                target_dir=f"build/mypyc/{package}")

setup(ext_modules=ext_modules)
