"""End to end: the operator's side: command line, health, metrics, logs, shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

from tests.support.client import listener, moderator, seeker
from tests.support.procs import ROOT, SECRET, Server, free_port


def test_token_command_prints_a_working_token() -> None:
    """`python -m chatserver token` signs with HEARTH_SECRET; without it, it refuses."""
    env = {"HEARTH_SECRET": SECRET, "PATH": ""}
    out = subprocess.run([sys.executable, "-m", "chatserver", "token", "listener", "--name", "Sam",
                          "--hours", "2"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0
    from chatserver import tokens

    assert tokens.verify(SECRET, out.stdout.strip(), "listener") == "Sam"
    refused = subprocess.run([sys.executable, "-m", "chatserver", "token", "moderator", "--name",
                              "A"], cwd=ROOT, env={"PATH": ""}, capture_output=True, text=True)
    assert refused.returncode == 2 and "HEARTH_SECRET" in refused.stderr


async def test_without_secret_the_printed_links_work() -> None:
    """Started with no HEARTH_SECRET, the server prints seeker, listener and moderator links
    whose tokens it accepts."""
    srv = Server(secret=None).start()
    try:
        out = srv.output()
        assert f"http://127.0.0.1:{srv.port}/" in out
        lst_token = re.search(r"/listener#token=(\S+)", out).group(1)  # type: ignore[union-attr]
        mod_token = re.search(r"/moderator#token=(\S+)", out).group(1)  # type: ignore[union-attr]
        lst = await listener(srv.ws_url, lst_token)
        await moderator(srv.ws_url, mod_token)
        s = await seeker(srv.ws_url)
        await s.expect("matched")
        await lst.expect("matched")
        assert "seeker" in srv.get("/").lower() or "<html" in srv.get("/").lower()
    finally:
        srv.stop()


def test_environment_variables_set_flags() -> None:
    """HEARTH_PORT and HEARTH_RESUME_S work like --port and --resume-s."""
    port = free_port()
    srv = Server(env={"HEARTH_PORT": str(port), "HEARTH_RESUME_S": "7"}, port=port)
    srv.args = []  # no --port flag: the environment must carry it
    cmd_port = srv.port
    srv.start()
    try:
        assert srv.port == cmd_port

        async def check() -> int:
            s = await seeker(srv.ws_url, skip=True)
            return int(s.welcome["resume_s"])

        assert asyncio.run(check()) == 7
    finally:
        srv.stop()


def test_health_ready_metrics(server: Server) -> None:
    """healthz and readyz answer 200 on the embedded default; metrics is Prometheus text."""
    assert server.status("/healthz") == 200
    assert server.status("/readyz") == 200
    text = server.get("/metrics")
    assert "hearth_matches_total" in text and "hearth_match_wait_seconds_bucket" in text


async def test_nothing_personal_in_logs_or_metrics(server: Server) -> None:
    """After a chat, the server's output and /metrics hold no text, alias, token or address."""
    token = server.token("listener", "Sam Listener")
    lst = await listener(server.ws_url, token)
    s = await seeker(server.ws_url, note="a very particular first sentence")
    room = (await s.expect("matched"))["room"]
    await s.send({"type": "message", "room": room, "text": "zebra-secret-words"})
    await lst.expect("message")
    await s.send({"type": "escalate", "room": room, "reason": "reason-words"})
    await s.expect("escalated")
    await s.send("garbage that fails to parse")
    await s.expect("error")
    metrics = server.get("/metrics")
    await s.close()
    await lst.close()
    await asyncio.sleep(0.3)
    out = server.output() + metrics
    for secret in ("zebra-secret-words", "particular first sentence", "reason-words",
                   s.welcome["alias"], "Sam Listener", token, s.resume, room, "127.0.0.1:",
                   "garbage"):
        assert secret not in out.replace(f"127.0.0.1:{server.port}", ""), secret
    assert "[accepted]" not in out and "WebSocket /ws" not in out


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found is not None, name
    return float(found.group(1))


async def test_metrics_count_frames_messages_and_handle_times(server: Server) -> None:
    """Two messages in a room add two to the message and message-frame counts and
    two handled frames (at least) to the handle-time histogram."""
    before = server.get("/metrics")
    lst = await listener(server.ws_url, server.token("listener", "Sam"))
    s = await seeker(server.ws_url)
    room = (await s.expect("matched"))["room"]
    for text in ("one", "two"):
        await s.send({"type": "message", "room": room, "text": text})
        await lst.expect("message")
    after = server.get("/metrics")
    await s.close()
    await lst.close()
    for name, grew in (("hearth_messages_total", 2),
                       ('hearth_frames_received_total{type="message"}', 2)):
        assert _metric(after, name) - _metric(before, name) == grew, name
    handled = _metric(after, "hearth_frame_handle_seconds_count") - _metric(
        before, "hearth_frame_handle_seconds_count")
    assert handled >= 4  # the shift, the request and the two messages
    assert _metric(after, 'hearth_frame_handle_seconds_bucket{le="+Inf"}') == _metric(
        after, "hearth_frame_handle_seconds_count")


async def test_sigterm_closes_with_1012_and_exits_quickly(make_server) -> None:  # type: ignore[no-untyped-def]
    """On SIGTERM rooms end with shutdown, sockets close with 1012, the process exits."""
    srv = make_server()
    lst = await listener(srv.ws_url, srv.token("listener", "Sam"))
    s = await seeker(srv.ws_url)
    await s.expect("matched")
    started = time.monotonic()
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    assert (await s.expect("ended"))["reason"] == "shutdown"
    assert await s.closed() == 1012
    assert await lst.closed() == 1012
    # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit.
    assert await asyncio.to_thread(srv.proc.wait, 10) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 5


def test_pages_carry_security_headers(server: Server) -> None:
    """Pages are served with a strict CSP and no referrer."""
    import urllib.request

    for path in ("/", "/listener", "/moderator"):
        with urllib.request.urlopen(server.url + path) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            assert r.headers["Referrer-Policy"] == "no-referrer"


def test_resources_endpoint_by_language(server: Server) -> None:
    """/api/resources gives crisis resources for a language, English by default."""
    import json

    en = json.loads(server.get("/api/resources"))["items"]
    es = json.loads(server.get("/api/resources?language=es"))["items"]
    assert en and es and en != es
    assert all({"name", "contact", "url"} <= set(item) for item in en + es)
