"""The compiled modules (chatserver.NATIVE and matching.NATIVE, built by setup.py
with mypyc): they are the ones that run when a build is fresh, and never when it
is stale or HEARTH_PURE=1 asks for the sources, each package on its own
(matching/native.py). ``make test`` sets HEARTH_EXPECT_NATIVE=1 after building
them, so the whole suite runs on the compiled modules and this file fails if they
were not built or not used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import chatserver
import matching
from tests.support.procs import ROOT

SUFFIX = EXTENSION_SUFFIXES[0]  # e.g. .cpython-311-x86_64-linux-gnu.so
PACKAGES = pytest.mark.parametrize("package", [chatserver, matching],
                                   ids=["chatserver", "matching"])
# A module of each package, for a compiled file of it planted beside the sources.
A_MODULE_EACH = pytest.mark.parametrize(("package", "module"), [("chatserver", "protocol"),
                                                              ("matching", "redis")])


def _imported_files(package_parent: Path, package: str, *,
                    pure: bool = False) -> tuple[dict[str, str], str]:
    """Import every NATIVE module of ``package`` in a new interpreter that finds the
    package under ``package_parent``: the file each came from, and what it printed
    on stderr."""
    code = (f"import importlib, json, {package}\n"
            f"print(json.dumps({{n: importlib.import_module('{package}.' + n).__file__"
            f" for n in {package}.NATIVE}}))")
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_PURE"}
    if pure:
        env["HEARTH_PURE"] = "1"
    env["PYTHONPATH"] = str(package_parent)
    out = subprocess.run([sys.executable, "-c", code], cwd=package_parent, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def _copy(tmp_path: Path, package: str) -> Path:
    """The package's sources alone, in a folder of their own."""
    shutil.copytree(ROOT / package, tmp_path / package,
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return tmp_path / package


@PACKAGES
def test_each_hot_module_runs_compiled_exactly_when_a_fresh_build_is_there(
        package: types.ModuleType) -> None:
    """Every NATIVE module comes from its compiled file when one is built and fresh,
    else from its source; under `make test` they must all be compiled."""
    files, stderr = _imported_files(ROOT, package.__name__)
    built = package.compiled()
    fresh = bool(built) and not package.stale()
    if os.environ.get("HEARTH_EXPECT_NATIVE") == "1":
        assert fresh, f"compiled: {sorted(built)}, stale: {package.stale()}"
        assert set(built) == set(package.NATIVE)
    for name, file in files.items():
        assert file.endswith(SUFFIX if fresh and name in built else ".py"), (name, file)
    assert ("older than their source" in stderr) == (bool(built) and not fresh)


@A_MODULE_EACH
def test_a_compiled_module_older_than_the_sources_is_not_used(tmp_path: Path, package: str,
                                                              module: str) -> None:
    """A stale compiled file (here one that could not even load) is passed over for
    the sources, with a warning that names it; a fresh one would be loaded."""
    folder = _copy(tmp_path, package)
    broken = folder / f"{module}{SUFFIX}"
    broken.write_bytes(b"not a shared object")
    # copytree kept the sources' times, whatever their age: older than the oldest
    before = min(p.stat().st_mtime for p in folder.glob("*.py")) - 3600
    os.utime(broken, (before, before))
    files, stderr = _imported_files(tmp_path, package)
    assert all(file.endswith(".py") for file in files.values()), files
    assert f"compiled modules older than their source ({module})" in stderr

    os.utime(broken)  # now newer than every source: Python would load it, and fails to
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("HEARTH_PURE", None)
    out = subprocess.run([sys.executable, "-c", f"import {package}.{module}"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "ImportError" in out.stderr


@A_MODULE_EACH
def test_hearth_pure_runs_the_sources_even_beside_a_fresh_build(tmp_path: Path, package: str,
                                                                module: str) -> None:
    """HEARTH_PURE=1 imports every module of the package from its source, silently."""
    folder = _copy(tmp_path, package)
    (folder / f"{module}{SUFFIX}").write_bytes(b"not a shared object")
    files, stderr = _imported_files(tmp_path, package, pure=True)
    assert all(file.endswith(".py") for file in files.values()), files
    assert "older than" not in stderr
