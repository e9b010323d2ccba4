"""The webhooks' own work, in process: CPU, instructions and statements per request.

``bench_webhooks.py`` measures the service as Twilio meets it, over HTTP, on a shared machine
whose CPU on offer drifts by a third from one minute to the next: two commits a few percent
apart cannot be told apart there (seen in sessions 5 to 8). This benchmark calls the webhook
endpoints' functions directly (``hotline.webhooks.inbound_sms``,
``hotline.webhooks_voice.call_status``), with a session and a request as FastAPI would pass
them but without HTTP, the signature check or the middleware (the floor's share, the same for
every webhook), on PostgreSQL, one request after another. Scenarios, as in bench_webhooks:

- ``sms_new_ticket``: the webhook of a text from a new number: since session 9 it stores the
  text and the job that answers it, and wakes the workers' relay (a Redis push);
- ``sms_answer``: that job (``tickets.tasks.run_outbox_job``, as a worker runs it, without RQ),
  for texts stored beforehand: classified, routed, a ticket opened and dispatched with its SLA
  timers, the reply stored and sent through the offline telephony adapter (what the webhook
  itself did before session 9);
- ``call_status``: ``completed`` for a conversation that already has its case (the usual end;
  since session 11 the endpoint is a coroutine, run here on an event loop of this process, and
  the end is written by the statement thread of ``kb.db.GroupedStatement``, one request at a
  time: nothing here is grouped, as on a quiet line);
- ``call_status_abandoned``: ``completed`` for a call that ended at the greeting (a callback
  task is opened).

One figure per line: ``<scenario>_sqlalchemy_statements_per_request`` (statements sent through
SQLAlchemy's engines; the few run through ``kb.db.execute_alone``, the end of a served call
and the day's ticket number, go to the driver directly and are not in it),
``<scenario>_cpu_ms_per_request`` (this process's CPU time; the least of ``--repeats`` runs, the
one the machine disturbed least) and, with ``--callgrind``, ``<scenario>_instructions_per_request``:
valgrind's callgrind counts the instructions of two runs of different lengths, and their
difference over the extra requests is the cost of one, without start-up or warm-up. Counted
instructions repeat within a fraction of a percent whatever else the machine does (seen here:
an abandoned call's callback 12.72 M before two changes, 11.69 M after, where CPU times before
and after the first of them overlapped). It needs valgrind (Debian's package); the three
scenarios take about 15 minutes that way, about a minute without it.

Run::

    .venv/bin/python benchmarks/bench_handlers.py [--requests 300] [--repeats 5]
        [--only SCENARIO ...] [--callgrind]

``BENCH_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/benchhooks``,
bench_webhooks' database) chooses the server; its public schema is **dropped** and made afresh.
When it does not answer, this prints why and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_webhooks  # noqa: E402  (this folder: its scenarios' requests and database set-up)

SCENARIOS = ("sms_new_ticket", "sms_answer", "call_status", "call_status_abandoned")
WARMUP = 30


class Handlers:
    """The endpoints' functions over one database, with the wiring the app does at start-up."""

    def __init__(self, database_url: str) -> None:
        import hotline.models_registry  # noqa: F401  (every table known to the ORM)
        from hotline import webhooks, webhooks_voice
        from hotline.settings import load_settings
        from hotline.wiring import configure_domain
        from kb.db import get_engine

        self.settings = load_settings(
            database_url=database_url,
            redis_url="redis://127.0.0.1:6379/9",  # not used: jobs stay in the outbox
            twilio_account_sid=None,
            twilio_auth_token=bench_webhooks.TOKEN,
            public_base_url="https://hotline.example.test",
        )
        configure_domain(self.settings)
        self.app = _AppState(self.settings)
        self.engine = get_engine()
        self.inbound_sms = webhooks.inbound_sms
        self.call_status = webhooks_voice.call_status
        # The call-status endpoint is a coroutine since session 11 (a served call's end waits,
        # holding no thread, for the statement its process runs for every end that came).
        self.loop = asyncio.new_event_loop()
        # The outbox row of the job that answers each stored text (``sms_answer``), by its sid.
        self.answer_jobs: dict[str, int] = {}

    def request(self, scenario: str, n: int, run: str) -> None:
        if scenario == "sms_answer":
            from tickets.tasks import run_outbox_job

            _, form = bench_webhooks._params("sms_new_ticket", n, run)
            result = run_outbox_job(self.answer_jobs[form["MessageSid"]])
            if result != "answered":
                raise SystemExit(f"{scenario}: {result}")
            return
        path, form = bench_webhooks._params(scenario, n, run)
        if scenario == "sms_new_ticket":
            response = self.inbound_sms(_request(self.app, path), form)
        else:
            response = self.loop.run_until_complete(
                self.call_status(_request(self.app, path), form, self.settings)
            )
        if response.status_code != 200:
            raise SystemExit(f"{scenario}: {response.status_code} {response.body!r}")


class _AppState:
    """The part of the FastAPI app a handler reads through its request (no pinned clock)."""

    def __init__(self, settings: Any) -> None:
        import redis
        from starlette.datastructures import State

        self.state = State(
            {"settings": settings, "redis": redis.Redis.from_url(str(settings.redis_url))}
        )


def _request(app: _AppState, path: str) -> Any:
    from starlette.requests import Request

    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": path,
            "query_string": b"",
            "headers": [],
            "app": app,
        }
    )


@contextmanager
def _statements() -> Iterator[list[int]]:
    """Counts the statements every SQLAlchemy engine sends while the block runs."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    count = [0]

    def seen(*_args: object) -> None:
        count[0] += 1

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield count
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


def _prepare(
    handlers: Handlers, database_url: str, scenario: str, run: str, first: int, count: int
) -> None:
    """What a scenario's requests up to ``count`` find: the served conversations of
    ``call_status``, the texts (from ``first`` on) that ``sms_answer`` answers."""
    if scenario == "call_status":
        bench_webhooks._served_calls(database_url, run, count)
    if scenario == "sms_answer":
        from sqlalchemy import text
        from sqlmodel import Session

        for n in range(first, count):
            path, form = bench_webhooks._params("sms_new_ticket", n, run)
            handlers.inbound_sms(_request(handlers.app, path), form)
        with Session(handlers.engine) as session:
            rows = session.execute(
                text(
                    "SELECT inbound_message.message_sid, outbox.id FROM outbox "
                    "JOIN inbound_message "
                    "ON inbound_message.id = (outbox.payload ->> 'message_id')::int "
                    "WHERE outbox.task = 'sms_answer' AND outbox.done_at IS NULL"
                )
            ).all()
        handlers.answer_jobs.update({str(sid): int(outbox_id) for sid, outbox_id in rows})


def measure(
    handlers: Handlers, database_url: str, scenario: str, requests: int, repeats: int, first: int
) -> dict[str, float]:
    """Requests numbered from ``first``: every caller is new (see ``main``)."""
    run = uuid.uuid4().hex[:6]
    per_repeat = WARMUP + requests
    _prepare(handlers, database_url, scenario, run, first, first + per_repeat * repeats)
    cpu: list[float] = []
    statements = 0
    for repeat in range(repeats):
        start = first + repeat * per_repeat
        for n in range(start, start + WARMUP):
            handlers.request(scenario, n, run)
        with _statements() as count:
            started = time.process_time()
            for n in range(start + WARMUP, start + per_repeat):
                handlers.request(scenario, n, run)
            cpu.append(time.process_time() - started)
        statements = count[0]
    return {
        "sqlalchemy_statements_per_request": statements / requests,
        "cpu_ms_per_request": 1000 * min(cpu) / requests,
    }


def _run_only(database_url: str, scenario: str, first: int, requests: int) -> None:
    """The child run under callgrind: ``requests`` of one scenario after the warm-up, numbered
    from ``first``."""
    handlers = Handlers(database_url)
    run = uuid.uuid4().hex[:6]
    _prepare(handlers, database_url, scenario, run, first, first + WARMUP + requests)
    for n in range(first, first + WARMUP + requests):
        handlers.request(scenario, n, run)


def instructions(database_url: str, scenario: str, requests: int, first: int) -> float:
    """Instructions per request: two runs under callgrind, the difference over the extra
    requests (start-up, imports and warm-up cancel out), numbered from ``first`` on."""
    counts = []
    for size in (10, 10 + requests):
        with tempfile.TemporaryDirectory() as work:
            done = subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={work}/callgrind.out",
                    sys.executable,
                    __file__,
                    "--child",
                    scenario,
                    str(first),
                    str(size),
                ],
                env={**os.environ, "BENCH_DATABASE_URL": database_url},
                capture_output=True,
                text=True,
                check=True,
            )
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise SystemExit(f"callgrind printed no count for {scenario}: {done.stderr[-500:]}")
        counts.append(int(found.group(1)))
        first += WARMUP + size
    return (counts[1] - counts[0]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="measured, per repeat")
    parser.add_argument("--repeats", type=int, default=5, help="CPU: the least of these runs")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=None)
    parser.add_argument(
        "--callgrind", action="store_true", help="also count instructions (valgrind)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("SCENARIO", "FIRST", "REQUESTS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/benchhooks"
    )
    if args.child:
        _run_only(database_url, args.child[0], int(args.child[1]), int(args.child[2]))
        return
    reason = bench_webhooks.database_answers(database_url)
    if reason is None and args.callgrind and shutil.which("valgrind") is None:
        reason = "valgrind is not installed (apt-get install valgrind)"
    if reason:
        print(f"bench_handlers skipped: {reason}")
        return
    chosen = [s for s in SCENARIOS if args.only is None or s in args.only]
    if "call_status" in chosen and "sms_answer" not in chosen:
        # The served conversations name a ticket: the first a text opened.
        chosen.insert(0, "sms_answer")
    bench_webhooks._fresh_schema(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_DATABASE_URL"] = database_url
    for command in (["db", "upgrade"], ["kb", "load"]):
        subprocess.run(
            [str(bench_webhooks.BIN / "hotline"), *command],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    bench_webhooks._vacuum_analyze(database_url)
    handlers = Handlers(database_url)
    print(f"bench_handlers_requests {args.requests}")
    print(f"bench_handlers_repeats {args.repeats}")
    # Every request of the whole run has a number of its own, so every caller is one never
    # heard of (a known firm would skip the firm's INSERT, and a repeated text could be taken
    # for a follow-up): the measured path stays the same from run to run.
    first = 0
    for scenario in chosen:
        figures = measure(handlers, database_url, scenario, args.requests, args.repeats, first)
        first += (WARMUP + args.requests) * args.repeats
        if args.callgrind:
            extra = args.requests // 3 or 1
            figures["instructions_per_request"] = instructions(database_url, scenario, extra, first)
            first += 2 * (WARMUP + 10) + extra
        for name, value in figures.items():
            print(f"{scenario}_{name} {_format(name, value)}")


def _format(name: str, value: float) -> str:
    if name == "instructions_per_request":
        return f"{value:.0f}"
    return f"{value:.2f}" if name.startswith("cpu") else f"{value:.1f}"


if __name__ == "__main__":
    main()
