"""Real processes for tests: uvicorn servers and a redis-server on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "x" * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except RuntimeError:
            raise  # the process we wait for has died: say so at once
        except Exception:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


class Server:
    """``python -m chatserver`` as a subprocess; its output goes to a file we can read."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None,
                 secret: str | None = SECRET) -> None:
        self.port = port or free_port()
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("HEARTH_SECRET", None)
        if secret is not None:
            self.env["HEARTH_SECRET"] = secret
        self.env.update(env or {})
        self.env["PYTHONUNBUFFERED"] = "1"
        self.log = tempfile.NamedTemporaryFile(prefix="hearth-server-", suffix=".log", delete=False)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def token(self, role: str, name: str, hours: float = 1) -> str:
        sys.path.insert(0, str(ROOT))
        from chatserver import tokens

        return tokens.issue(self.env["HEARTH_SECRET"], role, name, hours)

    def start(self) -> Server:
        cmd = [sys.executable, "-m", "chatserver", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(self.healthy, 30, f"server on {self.port}")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError("server exited:\n" + self.output())
        with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
            return bool(r.status == 200)

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=2) as r:
            return str(r.read().decode())

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed; `make test` installs it")
    return path


class RedisServer:
    """A throwaway redis-server on a free loopback port, no persistence; ``extra``
    arguments are passed on (a password, a unix socket). ``under`` is a command to
    run it under (valgrind, for loadtests/redis_instructions.py), and ``ready_s``
    how long it may take to answer."""

    def __init__(self, *extra: str, under: tuple[str, ...] = (), ready_s: float = 10.0) -> None:
        self.extra = extra
        self.under = under
        self.ready_s = ready_s
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hearth-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [*self.under, redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--protected-mode", "no",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._ping, self.ready_s, "redis-server")
        return self

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()
