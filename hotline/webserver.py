"""The web tier's processes: several uvicorn processes on one port, each accepting on a listening
socket of its own.

``uvicorn --workers N`` (and gunicorn) share one listening socket between the processes, and a
connection stays with the process that accepted it for as long as it lives. Connections that
live long (a proxy's or a load balancer's keep-alive pool, a load generator) piled up on one
process: with 32 keep-alive connections to two processes, splits of 24/8 and 31/1 were seen
(``ss -tnp``), so the busy process's callers waited twice as long (webhook p99 370 ms) while the
other core idled, and every run of the benchmark measured a different split. Here each process
listens on a socket of its own bound to the same port with ``SO_REUSEPORT``, and the kernel
spreads new connections over the sockets by a hash of their addresses, whatever each process
is doing at the time (the same runs: 16–19 connections per process, p99 260 ms).

The manager binds the sockets, so a process that dies is started again on its own socket
without a moment when the port refuses connections; SIGTERM (or SIGINT) stops every process
gracefully (uvicorn finishes the requests in flight) and then the manager.

Where the platform has no ``SO_REUSEPORT``, the processes share one socket, as uvicorn's own.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

APP = "hotline.app:app"
# A process that keeps dying right after its start (a broken deploy) is not restarted in a
# tight loop: at most once per this many seconds.
RESTART_PAUSE_SECONDS = 1.0


@dataclass(frozen=True)
class WebOptions:
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"
    graceful_timeout: int = 20
    access_log: bool = False

    def child_arguments(self) -> list[str]:
        return [
            "--forwarded-allow-ips",
            self.forwarded_allow_ips,
            "--graceful-timeout",
            str(self.graceful_timeout),
            *(["--proxy-headers"] if self.proxy_headers else []),
            *(["--access-log"] if self.access_log else []),
        ]


def reuse_port_supported() -> bool:
    # Linux spreads connections over SO_REUSEPORT sockets; other systems (macOS, the BSDs)
    # accept the option but hand every connection to one socket.
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` (one, shared, without SO_REUSEPORT). With
    port 0 the first socket's port is used for the others."""
    if count < 1:
        raise ValueError(f"workers must be at least 1, not {count}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse = reuse_port_supported()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count if reuse else 1):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class WebProcesses:
    """Runs one uvicorn process per worker and keeps them running until stopped."""

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        workers: int,
        options: WebOptions,
    ) -> None:
        self.sockets = list(sockets)
        self.workers = workers
        self.options = options
        self.children: list[subprocess.Popen[bytes] | None] = [None] * workers
        self.stopping = False

    def _socket_of(self, index: int) -> socket.socket:
        return self.sockets[index % len(self.sockets)]

    def _start(self, index: int) -> None:
        fd = self._socket_of(index).fileno()
        self.children[index] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hotline.webserver",
                "--fd",
                str(fd),
                *self.options.child_arguments(),
            ],
            pass_fds=(fd,),
        )

    def start(self) -> None:
        for index in range(self.workers):
            self._start(index)

    def stop(self, *_: object) -> None:
        self.stopping = True
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Supervise until :meth:`stop`; returns once every process has exited."""
        self.start()
        last_restart = 0.0
        while not self.stopping:
            time.sleep(0.2)
            for index, child in enumerate(self.children):
                if self.stopping or child is None or child.poll() is None:
                    continue
                pause = RESTART_PAUSE_SECONDS - (time.monotonic() - last_restart)
                if pause > 0:
                    time.sleep(pause)
                if self.stopping:
                    break
                log.warning(
                    "web process %s exited with %s; starting another", child.pid, child.returncode
                )
                self._start(index)
                last_restart = time.monotonic()
        deadline = time.monotonic() + self.options.graceful_timeout + 5
        for child in self.children:
            if child is None:
                continue
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for sock in self.sockets:
            sock.close()
        return 0


def serve_web(host: str, port: int, workers: int, options: WebOptions) -> int:
    """Bind, start ``workers`` processes and supervise them until SIGTERM or SIGINT."""
    sockets = bind_sockets(host, port, workers)
    processes = WebProcesses(sockets, workers, options)

    def stop(signum: int, _frame: FrameType | None) -> None:
        processes.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return processes.run()


def _child(argv: Sequence[str] | None = None) -> None:
    """One web process: uvicorn serving the app on the inherited socket."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m hotline.webserver")
    parser.add_argument("--fd", type=int, required=True)
    # Always passed by WebProcesses (WebOptions holds the defaults).
    parser.add_argument("--forwarded-allow-ips", required=True)
    parser.add_argument("--graceful-timeout", type=int, required=True)
    parser.add_argument("--proxy-headers", action="store_true")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args(argv)
    # socket.socket(fileno=...) reads the family from the socket itself (uvicorn's own --fd
    # takes every descriptor for a Unix socket, so TCP_NODELAY is never set and replies wait
    # on Nagle's algorithm).
    sock = socket.socket(fileno=args.fd)
    config = uvicorn.Config(
        APP,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    _child()
