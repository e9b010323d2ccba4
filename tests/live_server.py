"""The app under uvicorn on a free loopback port, in a thread of the test process: for clients
that need a real socket (a browser, a third-party HTTP client, a timeout that must fire)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from hotline.settings import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_env(settings: Settings) -> dict[str, str]:
    """The environment of a ``hotline`` or uvicorn process of its own on the test's database,
    Redis and folder (no HOTLINE_ variable of the caller's leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        {
            "HOTLINE_DATABASE_URL": settings.database_url,
            "HOTLINE_REDIS_URL": settings.redis_url or "",
            "HOTLINE_VAR_DIR": str(settings.var_dir),
            "HOTLINE_TWILIO_AUTH_TOKEN": settings.auth_token,
            "HOTLINE_PUBLIC_BASE_URL": settings.public_base_url,
            "HOTLINE_LOG_LEVEL": "WARNING",
        }
    )
    return env


@contextmanager
def serving(build: Callable[[str], FastAPI]) -> Iterator[str]:
    """``build(base_url)`` makes the app (it may need its own public URL); yields that URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(build(base), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
