"""The multi-node deployment files, exercised with the real binaries they name:
nginx (deploy/nginx.conf) in front of two nodes sharing one Redis, as in
docker-compose.yml. Docker itself cannot run on these machines."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.client import listener, seeker
from tests.support.procs import ROOT, RedisServer, Server, free_port, wait_until


def test_compose_file_runs_two_nodes_behind_nginx_with_one_secret() -> None:
    """docker-compose.yml: Redis without persistence, two nodes on that Redis with a
    shared HEARTH_SECRET, and nginx with deploy/nginx.conf."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "--save" in services["redis"]["command"]
    nodes = [s for name, s in services.items() if name.startswith("node")]
    assert len(nodes) >= 2
    for node in nodes:
        env = node["environment"]
        assert env["HEARTH_REDIS"] == "redis://redis:6379/0"
        assert "HEARTH_SECRET" in env["HEARTH_SECRET"]
    assert {n["environment"]["HEARTH_NODE_ID"] for n in nodes} == {"node1", "node2"}
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


@pytest.fixture
def nginx_in_front(make_server: Callable[..., Server]) -> Iterator[tuple[str, list[Server]]]:
    """deploy/nginx.conf with its upstreams pointed at two real nodes on free ports."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx is not installed; `make test` installs it")
    redis = RedisServer().start()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    nodes = [make_server("--redis", redis.url, "--node-id", f"node{i}", "--allow-origin", origin)
             for i in (1, 2)]
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server node1:8000", f"server 127.0.0.1:{nodes[0].port}")
    conf = conf.replace("server node2:8000", f"server 127.0.0.1:{nodes[1].port}")
    conf = re.sub(r"listen 8080;", f"listen 127.0.0.1:{port};", conf)
    prefix = Path(tempfile.mkdtemp(prefix="hearth-nginx-"))
    conf = conf.replace("/tmp/hearth-nginx", str(prefix / "t"))
    (prefix / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                             "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        import urllib.request

        wait_until(lambda: urllib.request.urlopen(origin + "/healthz").status == 200, 10, "nginx")
        yield f"ws://127.0.0.1:{port}/ws", nodes
    finally:
        proc.terminate()
        proc.wait(5)
        redis.stop()


async def test_chat_through_nginx_across_two_nodes(
        nginx_in_front: tuple[str, list[Server]]) -> None:
    """Through nginx's WebSocket proxying, listeners and seekers land on both nodes and
    every seeker is paired and chats, whichever node each side reached."""
    url, nodes = nginx_in_front
    token = nodes[0].token("listener", "Sam")
    listeners = [await listener(url, token, capacity=2) for _ in range(2)]
    seekers = [await seeker(url) for _ in range(4)]
    for i, s in enumerate(seekers):
        room = (await s.expect("matched", timeout=10))["room"]
        await s.send({"type": "message", "room": room, "text": f"hello {i}", "id": str(i)})
        assert (await s.expect("message", id=str(i)))["seq"] == 1
    got = []
    for lst in listeners:
        for _ in range(2):
            got.append((await lst.expect("message", timeout=10))["text"])
    assert sorted(got) == [f"hello {i}" for i in range(4)]
    for node in nodes:  # nginx spread the six connections over both nodes
        held = re.findall(r'^hearth_connections\{role="\w+"\} (\S+)$', node.get("/metrics"), re.M)
        assert sum(float(v) for v in held) >= 1
