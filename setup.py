"""Packaging is in pyproject.toml; this file only adds the compiled modules.

``HEARTH_NATIVE=1 python setup.py build_ext --inplace`` (``make native``, which
``make run``, ``test``, ``bench`` and ``loadtest`` depend on) compiles the
modules of ``chatserver.NATIVE`` with mypyc, each into an extension beside its
source (``chatserver/talk__mypyc...so`` and a small ``talk...so`` that loads it).
Each on its own rather than all in one: one library for all, inside the
package, gives the modules a wrong ``__file__`` (mypyc expects such a library
above the package), and measured no faster (core_cost.py). Without
``HEARTH_NATIVE`` nothing is compiled and Hearth runs from its sources, as a
plain ``pip install`` does. See chatserver/__init__.py for how a stale build
is noticed.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from setuptools import setup


def native_modules() -> list[str]:
    """chatserver.NATIVE, read without importing the package."""
    tree = ast.parse((Path(__file__).parent / "chatserver" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "NATIVE":
            return [f"chatserver/{name}.py" for name in ast.literal_eval(node.value)]
    raise RuntimeError("chatserver.NATIVE not found")


ext_modules = []
if os.environ.get("HEARTH_NATIVE") == "1":
    from mypyc.build import mypycify

    ext_modules = mypycify(native_modules(), separate=True, target_dir="build/mypyc")

setup(ext_modules=ext_modules)
