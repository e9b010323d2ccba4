"""Observability: request ids, request latency histograms and ``GET /metrics`` (Prometheus).

- :class:`RequestIdMiddleware` takes ``X-Request-ID`` from the request (or makes one), puts it in
  :data:`hotline.logging_setup.request_id_var` for every log line of the request, and answers
  it in the response. Outbox rows written during the request carry it in their payload
  (``request_id``); a job that loads its row in a worker sets it again for its own log lines.
- :class:`LatencyMiddleware` observes each request's duration under its route *template*
  (``/api/institutions/{institution_id}``, never the raw path) so the label set stays small.
- ``GET /metrics``: the histograms, plus gauges computed at scrape time with a few cheap
  queries: tickets by state, outbox backlog, SLA breaches, revisit outcomes, RQ queue depths.
  Access: with ``HOTLINE_METRICS_TOKEN`` set, ``Authorization: Bearer <token>``; unset, loopback
  clients only (behind a proxy on the same machine, the proxy must pass ``X-Forwarded-For`` or
  keep ``/metrics`` private: the proxy itself is a loopback client).

With several web worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty folder shared by
them (prometheus-client's multiprocess mode) so any worker's scrape reports all of them.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import redis
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from rq import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotline.deps import TwilioForm
from hotline.logging_setup import request_id_var
from hotline.queue import QUEUE_NAMES
from hotline.settings import Settings
from kb.db import get_engine

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)


def metrics_token(settings: Settings) -> str | None:
    """The bearer token for ``/metrics`` (``HOTLINE_METRICS_TOKEN``); empty means unset."""
    return settings.metrics_token or None


# --- request id -------------------------------------------------------------------------


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1").strip()
                break
        # A client's id is kept only if it is short and plain (it goes into every log line).
        request_id = given if _VALID_REQUEST_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


# --- latency ------------------------------------------------------------------------------


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "<unmatched>"


class LatencyMiddleware:
    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def observe_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe_status)
        finally:
            self.histogram.labels(
                route=_route_template(scope), method=scope["method"], status=str(status[0])
            ).observe(time.perf_counter() - started)


# --- scrape-time gauges ---------------------------------------------------------------------


class StateCollector:
    """Gauges read at scrape time: a handful of indexed counts and one Redis round trip."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield from self._database()
        yield from self._queues()
        took = GaugeMetricFamily(
            "hotline_scrape_duration_seconds", "Time spent computing the state gauges"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _database(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hotline_database_up", "1 when the database answered the scrape")
        tickets = GaugeMetricFamily("hotline_tickets", "Tickets by state", labels=["state"])
        backlog = GaugeMetricFamily(
            "hotline_outbox_backlog", "Outbox jobs committed but not yet relayed into RQ"
        )
        oldest = GaugeMetricFamily(
            "hotline_outbox_oldest_unrelayed_seconds", "Age of the oldest unrelayed outbox job"
        )
        breaches = GaugeMetricFamily(
            "hotline_sla_breaches", "SLA clocks missed (tickets escalated by an SLA check), ever"
        )
        outcomes = GaugeMetricFamily(
            "hotline_revisit_outcomes", "Completed revisits by outcome", labels=["outcome"]
        )
        # Texts are answered by the workers: in a flood, this is the queue a caller waits in.
        unanswered = GaugeMetricFamily(
            "hotline_sms_unanswered", "Texts received and not yet answered by a worker"
        )
        unanswered_age = GaugeMetricFamily(
            "hotline_sms_oldest_unanswered_seconds", "Age of the oldest text not yet answered"
        )
        try:
            with get_engine().connect() as conn:
                for state, count in conn.execute(
                    text("SELECT state, count(*) FROM ticket GROUP BY state")
                ):
                    tickets.add_metric([str(state)], float(count))
                count, first = conn.execute(
                    text("SELECT count(*), min(created_at) FROM outbox WHERE relayed_at IS NULL")
                ).one()
                backlog.add_metric([], float(count))
                oldest.add_metric([], _age_seconds(first))
                breaches.add_metric(
                    [],
                    float(
                        conn.execute(
                            text(
                                "SELECT count(*) FROM outbox "
                                "WHERE task = 'sla_check' AND result = 'escalated'"
                            )
                        ).scalar_one()
                    ),
                )
                for outcome, count in conn.execute(
                    text(
                        "SELECT outcome, count(*) FROM revisit "
                        "WHERE completed_at IS NOT NULL GROUP BY outcome"
                    )
                ):
                    outcomes.add_metric([str(outcome or "none")], float(count))
                # Read through the partial index of unanswered texts, not the whole table.
                count, first = conn.execute(
                    text(
                        "SELECT count(*), min(received_at) FROM inbound_message "
                        "WHERE answered_at IS NULL"
                    )
                ).one()
                unanswered.add_metric([], float(count))
                unanswered_age.add_metric([], _age_seconds(first))
                conn.rollback()
            up.add_metric([], 1.0)
        except SQLAlchemyError as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        yield from (up, tickets, backlog, oldest, breaches, outcomes, unanswered, unanswered_age)

    def _queues(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hotline_redis_up", "1 when Redis answered the scrape")
        depth = GaugeMetricFamily(
            "hotline_rq_queue_depth", "Jobs waiting in an RQ queue", labels=["queue"]
        )
        scheduled = GaugeMetricFamily(
            "hotline_rq_scheduled", "Jobs scheduled for later in an RQ queue", labels=["queue"]
        )
        failed = GaugeMetricFamily(
            "hotline_rq_failed", "Jobs in an RQ queue's failed registry", labels=["queue"]
        )
        connection: redis.Redis | None = getattr(self.app.state, "redis", None)
        if connection is None:
            up.add_metric([], 0.0)
            yield up
            return
        try:
            pipe = connection.pipeline(transaction=False)
            for name in QUEUE_NAMES:
                pipe.llen(Queue(name, connection=connection).key)
                pipe.zcard(ScheduledJobRegistry(name, connection=connection).key)
                pipe.zcard(FailedJobRegistry(name, connection=connection).key)
            values = pipe.execute()
        except redis.RedisError as exc:
            log.warning("metrics: Redis unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        for index, name in enumerate(QUEUE_NAMES):
            depth.add_metric([name], float(values[3 * index]))
            scheduled.add_metric([name], float(values[3 * index + 1]))
            failed.add_metric([name], float(values[3 * index + 2]))
        yield from (up, depth, scheduled, failed)


def _age_seconds(created: Any) -> float:
    if created is None:
        return 0.0
    from datetime import datetime

    from kb.db import as_utc, utcnow

    if isinstance(created, str):  # SQLite through a plain text() query
        created = datetime.fromisoformat(created)
    return max(0.0, (utcnow() - as_utc(created)).total_seconds())


# --- the endpoint -----------------------------------------------------------------------------

router = APIRouter(tags=["health"])


def _client_is_loopback(request: Request) -> bool:
    return request.client is not None and request.client.host in LOOPBACK


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (bearer token, or loopback clients only)",
    include_in_schema=False,
)
def metrics(request: Request) -> Response:
    token: str | None = request.app.state.metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return Response(
                "a valid bearer token is required\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not _client_is_loopback(request):
        return Response(
            "metrics are served to loopback clients only (set HOTLINE_METRICS_TOKEN)\n",
            status_code=403,
            media_type="text/plain",
        )
    registry: CollectorRegistry = request.app.state.metrics_registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(StateCollector(request.app))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


PING_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


@router.post(
    "/twilio/ping",
    response_class=Response,
    summary="Signed constant TwiML: checks the signature path end to end (and the benchmark floor)",
)
async def twilio_ping(form: TwilioForm) -> Response:
    """Verifies the Twilio signature like every webhook, touches neither the database nor
    Redis, answers an empty ``<Response/>``. Useful as a synthetic monitor of the public URL and
    token, and the floor the webhook benchmarks are compared with: ``async def``, so it takes
    no thread (since session 11, when the usual end of a call and a new call's greeting stopped
    taking one; a ``def`` floor would have paid a thread hop they no longer pay)."""
    return Response(content=PING_TWIML, media_type="application/xml")


def install(app: FastAPI, settings: Any) -> None:
    """Add ``/metrics``, the latency histograms and request ids to ``app``. Call it after every
    other middleware so these wrap them all (the request id is then on every log line)."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "hotline_http_request_duration_seconds",
        "Request latency by route template, method and status",
        labelnames=["route", "method", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(StateCollector(app))
    app.state.metrics_registry = registry
    app.state.metrics_token = metrics_token(settings)
    app.include_router(router)
    app.add_middleware(LatencyMiddleware, histogram=histogram)
    app.add_middleware(RequestIdMiddleware)
