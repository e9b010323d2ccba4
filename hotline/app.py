"""The ASGI application: ``hotline.app:app``, built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from hotline import api, webhooks
from hotline.queue import connect, resolve_redis_url
from hotline.settings import Settings, load_settings
from hotline.wiring import configure_domain

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Adapters (database engine, Redis) are built here, at start-up, not at
    import time, from the one settings object."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_domain(settings)
        app.state.redis = connect(resolve_redis_url(settings))
        try:
            yield
        finally:
            app.state.redis.close()

    app = FastAPI(
        title="SME service hotline",
        description="Hotline backend for the city's SME public service network.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(api.health_router)
    return app


def _lazy_app() -> FastAPI:
    return create_app()


class _AppProxy:
    """``hotline.app:app`` for uvicorn, built on first use so importing this module has no side
    effects (no settings read, no files written)."""

    _app: FastAPI | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = _lazy_app()
        await self._app(scope, receive, send)


app = _AppProxy()
