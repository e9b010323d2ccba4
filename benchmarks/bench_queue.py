"""The queue at scale: page render times with 10,000, 100,000 and 1,000,000 tickets.

For each size the database is grown to that many tickets (``generate_tickets.py``: COPY, real
catalogue, realistic lives), analysed, and then pages are rendered through the real app (FastAPI's
TestClient: the session cookie, authorisation, the queries and the Jinja templates, everything
but the socket), logged in as ``agent`` (and ``supervisor`` for the dashboard):

- ``queue_filtered``: ``/queue?category=financing&state=dispatched``, the first page;
- ``queue_default``: ``/queue``, the first page of the default view (every open service ticket);
- ``ticket_page``: ``/tickets/{number}`` for tickets drawn across the whole table;
- ``dashboard_month``: ``/supervisor/dashboard?days=30`` (one month's measures by category,
  district and institution, computed in SQL);
- ``metrics_month_by_institution``: ``GET /api/metrics?by=institution`` for the last month;
- ``prometheus_scrape``: ``GET /metrics`` (ticket, outbox and revisit gauges).

One line per figure: ``<page>_<size>_p50_ms`` and ``_p95_ms``, then, when both the smallest and
the largest size ran, ``<page>_p50_ratio_<largest>_<smallest>``. ``--explain`` prints
``EXPLAIN (ANALYZE, BUFFERS)`` for the slowest SQL statement of each page at each size.

Run::

    .venv/bin/python benchmarks/bench_queue.py                      # 10k only (make bench)
    .venv/bin/python benchmarks/bench_queue.py --sizes 10k,100k,1M  # the full run, grows the data

``BENCH_QUEUE_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/bench``,
created when missing) and ``BENCH_QUEUE_REDIS_URL`` (default ``redis://127.0.0.1:6379/5``)
choose the servers. The database keeps its tickets between runs (growing is cheaper than
starting again); a size below what it already holds needs ``--reset``, which empties the case
tables first. When a server does not answer, it prints why and exits 0 (``make bench`` goes on).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
PASSWORD = "hotline-demo-2026"
METRICS_TOKEN = "bench-queue-metrics-token-0123456789"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
CASE_TABLES = (
    "firm, ticket, ticket_event, routing_record, revisit, inbound_message, outbox, "
    "ticket_counter, outbound_call, outbound_message"
)


def parse_size(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if factor > 1 else text
    try:
        value = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 10k or 1M") from None
    if value < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 100 tickets")
    return value


def label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def _reachable(database_url: str, redis_url: str) -> str | None:
    """Why the servers cannot be used, or None; creates the database when it is missing."""
    import psycopg
    import redis
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        return f"Redis at {redis_url} does not answer ({type(exc).__name__})"
    conninfo = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "connect_timeout": 3,
    }
    if url.password:
        conninfo["password"] = url.password
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:  # type: ignore[arg-type]
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)
            ).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{url.database}"')
    except psycopg.Error as exc:
        return f"PostgreSQL at {url.host}:{url.port} does not answer ({type(exc).__name__})"
    return None


class Statements:
    """The SQL statements of the request being measured, with their durations."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        # On every engine: the app builds its own at start-up (in its lifespan).
        engine = Engine
        self.recorded: list[tuple[float, str, Any]] = []
        self.on = False

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, params: Any, *_rest: Any) -> None:
            if self.on:
                took = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
                self.recorded.append((took, statement, params))


def measure(fetch: Callable[[int], Any], runs: int, warmup: int = 3) -> list[float]:
    for index in range(warmup):
        fetch(index)
    times = []
    for index in range(runs):
        started = time.perf_counter()
        fetch(index)
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated ticket counts, ascending (default 10k; the full run: 10k,100k,1M)",
    )
    parser.add_argument("--runs", type=int, default=30, help="measured requests per page")
    parser.add_argument("--reset", action="store_true", help="empty the case tables first")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN each page's slowest query")
    parser.add_argument("--days", type=int, default=300, help="tickets spread over N days")
    args = parser.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in (args.sizes or "10k").split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if sizes != sorted(sizes):
        parser.error("--sizes must be ascending (the data grows from one size to the next)")

    database_url = os.environ.get("BENCH_QUEUE_DATABASE_URL", DEFAULT_DB)
    redis_url = os.environ.get("BENCH_QUEUE_REDIS_URL", DEFAULT_REDIS)
    problem = _reachable(database_url, redis_url)
    if problem:
        print(f"bench_queue: skipped: {problem}")
        return 0

    os.environ["HOTLINE_DATABASE_URL"] = database_url
    os.environ["HOTLINE_REDIS_URL"] = redis_url
    import generate_tickets
    from sqlalchemy import text

    from hotline.app import create_app
    from hotline.settings import load_settings

    engine = generate_tickets.prepare(database_url)
    have = generate_tickets.ticket_count(engine)
    if have > sizes[0] and (args.reset or args.sizes is None):
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {CASE_TABLES} RESTART IDENTITY CASCADE"))
            conn.execute(text("UPDATE institution SET open_cases = 0"))
        have = 0
    if have > sizes[0]:
        print(
            f"bench_queue: the database already holds {have} tickets, more than "
            f"{label(sizes[0])}; add --reset to start again from empty",
            file=sys.stderr,
        )
        return 2

    settings = load_settings(
        database_url=database_url, redis_url=redis_url, metrics_token=METRICS_TOKEN
    )
    app = create_app(settings)
    statements = Statements()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[str, dict[int, list[float]]] = {}
    print(f"bench_queue: {database_url.split('@')[-1]}, sizes {', '.join(map(label, sizes))}")
    for size in sizes:
        grow(engine, size, args.days)
        for name, times in measure_size(app, engine, statements, size, args).items():
            results.setdefault(name, {})[size] = times
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for name, by_size in results.items():
            ratio = statistics.median(by_size[large]) / statistics.median(by_size[small])
            print(f"{name}_p50_ratio_{label(large)}_{label(small)} {ratio:.2f}")
    return 0


def grow(engine: Any, size: int, days: int) -> None:
    """Add tickets until the database holds ``size``; then refresh the planner's statistics."""
    import generate_tickets
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from sqlalchemy import text

    missing = size - generate_tickets.ticket_count(engine)
    if missing > 0:
        started = time.perf_counter()
        with Progress(
            f"[progress.description]growing to {label(size)}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        ) as bar:
            task = bar.add_task("tickets", total=missing)
            generate_tickets.generate(
                engine, missing, days=days, progress=lambda n: bar.advance(task, n)
            )
        print(f"# generated {missing} tickets in {time.perf_counter() - started:.0f} s")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _login(client: Any, username: str) -> None:
    page = client.get("/login")
    found = CSRF_INPUT.search(page.text)
    assert found, "no csrf_token on the login page"
    answer = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": found[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 303, (username, answer.status_code)


def measure_size(
    app: Any, engine: Any, statements: Statements, size: int, args: argparse.Namespace
) -> dict[str, list[float]]:
    """Every page's request times (ms) at this size; prints two lines per page."""
    from fastapi.testclient import TestClient
    from sqlalchemy import text
    from sqlmodel import Session

    from hotline.accounts.models import User
    from hotline.accounts.service import issue_token
    from kb.db import utcnow

    with engine.connect() as conn:
        numbers = [
            row[0]
            for row in conn.execute(
                text("SELECT number FROM ticket TABLESAMPLE SYSTEM (5) LIMIT 2000")
            )
        ] or [row[0] for row in conn.execute(text("SELECT number FROM ticket LIMIT 200"))]
        supervisor_id = conn.execute(
            text("SELECT id FROM app_user WHERE username = 'supervisor'")
        ).scalar_one()
    random.Random(size).shuffle(numbers)
    with Session(engine) as session:
        user = session.get(User, supervisor_id)
        assert user is not None
        token = issue_token(session, user, label="bench_queue")
        session.commit()
    until = utcnow()
    month = {
        "by": "institution",
        "since": (until - timedelta(days=30)).isoformat(),
        "until": until.isoformat(),
    }
    results: dict[str, list[float]] = {}
    with (
        TestClient(app, base_url="http://testserver") as agent,
        TestClient(app, base_url="http://testserver") as supervisor,
    ):
        _login(agent, "agent")
        _login(supervisor, "supervisor")

        def get(client: TestClient, url: str, **kwargs: Any) -> Any:
            answer = client.get(url, **kwargs)
            if answer.status_code != 200:
                raise SystemExit(f"bench_queue: {url} answered {answer.status_code}")
            return answer

        pages: dict[str, Callable[[int], Any]] = {
            "queue_filtered": lambda i: get(agent, "/queue?category=financing&state=dispatched"),
            "queue_default": lambda i: get(agent, "/queue"),
            "ticket_page": lambda i: get(agent, f"/tickets/{numbers[i % len(numbers)]}"),
            "dashboard_month": lambda i: get(supervisor, "/supervisor/dashboard?days=30"),
            "metrics_month_by_institution": lambda i: get(
                agent, "/api/metrics", params=month, headers={"Authorization": f"Bearer {token}"}
            ),
            "prometheus_scrape": lambda i: get(
                agent, "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            ),
        }
        for name, fetch in pages.items():
            heavy = name.startswith(("dashboard", "metrics"))
            runs = max(5, args.runs // 3) if heavy else args.runs
            statements.recorded = []
            statements.on = args.explain
            times = measure(fetch, runs)
            statements.on = False
            results[name] = times
            print(f"{name}_{label(size)}_p50_ms {statistics.median(times):.1f}")
            print(f"{name}_{label(size)}_p95_ms {p95(times):.1f}")
            if args.explain and statements.recorded:
                _explain(statements.recorded, name, size)
    return results


def _explain(recorded: list[tuple[float, str, Any]], name: str, size: int) -> None:
    """The slowest statement of the page (by its mean over the runs), explained."""
    by_text: dict[str, list[float]] = {}
    sample: dict[str, Any] = {}
    for took, statement, params in recorded:
        by_text.setdefault(statement, []).append(took)
        sample[statement] = params
    statement = max(by_text, key=lambda s: statistics.mean(by_text[s]))
    mean_ms = statistics.mean(by_text[statement]) * 1000
    print(f"# {name} at {label(size)}: slowest statement, mean {mean_ms:.1f} ms")
    from kb import db

    raw = db.get_engine().raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, sample[statement])
        for (line,) in cursor.fetchall():
            print("#   " + line)
        raw.rollback()
    finally:
        raw.close()


if __name__ == "__main__":
    sys.exit(main())
