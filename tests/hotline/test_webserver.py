"""``hotline web``: several uvicorn processes on one port, each on a listening socket of its own,
so that long-lived connections spread over the processes; a process that dies is replaced;
SIGTERM stops them all."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from hotline.settings import Settings
from hotline.webserver import bind_sockets
from tests.live_server import free_port, process_env

BIN = Path(sys.executable).parent


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _established_by_process(pids: list[int], port: int) -> dict[int, int]:
    """How many established TCP connections to ``port`` each process holds (from /proc)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    counts = dict.fromkeys(pids, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:
                counts[inodes[fields[9]]] += 1
    return counts


def _get(connection: http.client.HTTPConnection, path: str = "/healthz") -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


@contextmanager
def _open_connections(port: int, count: int) -> Iterator[list[http.client.HTTPConnection]]:
    """``count`` keep-alive connections (each opened by its first request), closed after."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(count)]
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


def _wait_answering(port: int, manager: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert manager.poll() is None, "hotline web exited"
        assert time.monotonic() < deadline, "hotline web did not answer"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if _get(connection) == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.2)


@pytest.fixture
def web(settings: Settings, clean_db: Engine) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    manager = subprocess.Popen(
        [str(BIN / "hotline"), "web", "--port", str(port), "--workers", "2"],
        env=process_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_answering(port, manager)
        yield manager, port
    finally:
        if manager.poll() is None:
            os.killpg(manager.pid, signal.SIGKILL)
        manager.wait()


def test_long_lived_connections_spread_over_every_process(
    web: tuple[subprocess.Popen[bytes], int],
) -> None:
    manager, port = web
    workers = _children(manager.pid)
    assert len(workers) == 2
    with _open_connections(port, 32) as connections:
        assert [_get(c) for c in connections] == [200] * 32
        counts = _established_by_process(workers, port)
        # A hash spreads 32 connections; fewer than 4 on one side has odds of about 3 in 10^6.
        assert sum(counts.values()) == 32
        assert min(counts.values()) >= 4, counts
        # The connections stay open and keep their process: a second round on each.
        assert [_get(c) for c in connections] == [200] * 32
        assert _established_by_process(workers, port) == counts


def test_a_process_that_dies_is_replaced_and_the_port_keeps_answering(
    web: tuple[subprocess.Popen[bytes], int],
) -> None:
    manager, port = web
    first, second = _children(manager.pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        workers = _children(manager.pid)
        if len(workers) == 2 and first not in workers:
            break
        assert time.monotonic() < deadline, f"no new process: {workers}"
        time.sleep(0.2)
    assert second in workers
    replacement = next(pid for pid in workers if pid != second)
    _wait_answering(port, manager)
    with _open_connections(port, 32) as connections:
        assert [_get(c) for c in connections] == [200] * 32
        assert _established_by_process([second, replacement], port)[replacement] > 0


def test_sigterm_stops_every_process_and_frees_the_port(
    web: tuple[subprocess.Popen[bytes], int],
) -> None:
    manager, port = web
    workers = _children(manager.pid)
    manager.send_signal(signal.SIGTERM)
    assert manager.wait(timeout=40) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_port_taken_by_another_program_is_named_in_the_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "hotline"), "web", "--port", str(port), "--workers", "2"],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_each_process_gets_a_socket_of_its_own_on_one_port() -> None:
    sockets = bind_sockets("127.0.0.1", 0, 3)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(sockets) == 3 and len(ports) == 1
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    with pytest.raises(ValueError, match="at least 1"):
        bind_sockets("127.0.0.1", 0, 0)
