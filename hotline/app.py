"""The ASGI application: ``hotline.app:app``, built by :func:`create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from hotline import api, api_routing, api_tickets, open311, web, webhooks, webhooks_voice
from hotline.limits import BodySizeLimit, install_database_error_handlers
from hotline.logging_setup import configure_from_settings
from hotline.observability import install as install_observability
from hotline.public import forms, kb_api, pages
from hotline.queue import connect, resolve_redis_url
from hotline.settings import Settings, load_settings
from hotline.web import routes_notices, routes_simulator
from hotline.wiring import configure_domain, freeze_start_up_objects, warm_up
from kb.db import get_engine
from tickets import outbox

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Adapters (database engine, Redis) are built here, at start-up, not at
    import time, from the one settings object."""
    settings = settings or load_settings()
    configure_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_domain(settings)
        # Handlers are synchronous and share one GIL: past a few threads, more of them only
        # interleave requests (every one finishes later) instead of finishing more.
        to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        app.state.redis = connect(resolve_redis_url(settings))
        await run_in_threadpool(warm_up)
        freeze_start_up_objects()
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
    # The flows' clock (webhooks_voice.clock): the system's unless a test pins one. Set, so
    # reading it does not raise and catch an AttributeError on every voice request.
    app.state.clock = None
    app.include_router(webhooks.router)
    app.include_router(webhooks_voice.router)
    app.include_router(api.router)
    app.include_router(api_routing.router)
    app.include_router(api_tickets.router)
    app.include_router(api.health_router)
    app.include_router(open311.router)
    app.include_router(kb_api.router)
    app.include_router(pages.router)
    app.include_router(forms.router)
    web.install(app)
    app.include_router(routes_notices.router)
    app.include_router(routes_simulator.router)
    app.add_middleware(
        RelayOutboxAfterResponse,
        relay=lambda: outbox.relay_outbox(
            outbox.session_factory_for(get_engine()),
            app.state.redis,
            due_within=outbox.RELAY_AFTER_REQUEST_HORIZON,
        ),
    )
    install_database_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    install_observability(app, settings)  # outermost: request id and latency around all else
    return app


class RelayOutboxAfterResponse:
    """After a request whose handler committed outbox rows (jobs its change needs), move them
    into RQ. It runs once the response is sent, so the caller never waits on Redis and still
    gets an answer when Redis is down; the worker's periodic relay retries what is left."""

    def __init__(self, app: ASGIApp, relay: Callable[[], object]) -> None:
        self.app = app
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and outbox.pending_commits.is_set():
            outbox.pending_commits.clear()
            try:
                await run_in_threadpool(self.relay)
            except Exception:  # noqa: BLE001 - the periodic relay will try again
                log.exception("outbox relay after the request failed")


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
