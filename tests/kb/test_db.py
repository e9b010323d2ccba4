"""kb.db's one-statement transactions, alone and grouped (PostgreSQL only: SQLite runs everything
in process)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from kb.db import GroupedStatement, execute_alone
from tests.conftest import kill_other_connections


@pytest.fixture
def postgresql(clean_db: Engine) -> Engine:
    if clean_db.dialect.name != "postgresql":
        pytest.skip("execute_alone is PostgreSQL's: SQLite has no round trips to save")
    return clean_db


def test_a_statement_commits_alone_and_returns_its_first_row(postgresql: Engine) -> None:
    row = execute_alone(
        postgresql,
        "INSERT INTO dialogue_state (key, flow, phone, language, data, finished, created_at,"
        " updated_at, expires_at) VALUES (%(key)s, 'main', '', 'zh', '{}', false, now(), now(),"
        " now()) RETURNING key, flow",
        {"key": "call:CA-alone"},
    )
    assert row == {"key": "call:CA-alone", "flow": "main"}
    # Committed on its own: another connection sees it.
    with postgresql.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM dialogue_state WHERE key = 'call:CA-alone'")
            ).scalar_one()
            == 1
        )
    assert execute_alone(postgresql, "SELECT 1 AS one WHERE false", {}) is None


def test_dead_pooled_connections_are_replaced_without_an_error(postgresql: Engine) -> None:
    for _ in range(3):
        assert execute_alone(postgresql, "SELECT 1 AS one", {}) == {"one": 1}
    assert kill_other_connections(postgresql) > 0
    assert execute_alone(postgresql, "SELECT 2 AS two", {}) == {"two": 2}


def test_an_error_in_the_statement_is_raised_and_the_pool_stays_usable(
    postgresql: Engine,
) -> None:
    from psycopg import errors

    before = execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {})
    with pytest.raises(errors.UndefinedTable):
        execute_alone(postgresql, "SELECT * FROM no_such_table", {})
    assert execute_alone(postgresql, "SELECT 3 AS three", {}) == {"three": 3}
    # In autocommit an error leaves nothing open: the connection goes on serving.
    assert execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {}) == before


class Interrupted(Exception):
    pass


def test_a_statement_interrupted_midway_does_not_leave_its_connection_in_the_pool(
    postgresql: Engine,
) -> None:
    """Connections go back to this pool without a reset: one whose statement was cut short (a
    signal, a timeout in the caller) still has it running, and must not be lent again."""
    before = execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {})

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Interrupted):
            execute_alone(postgresql, "SELECT pg_sleep(5)", {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    after = execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {})
    assert after is not None and after != before


def test_a_forked_child_disposing_the_engine_leaves_the_parents_connections_open(
    postgresql: Engine,
) -> None:
    """A job's work horse is forked from the worker and disposes the engine it inherited
    (close=False): the companion pool must let go of the parent's connections, not close them
    (closing would end the parent's sessions, which its retry would then hide: hence the
    backend pid)."""
    before = execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {})
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's own exit status is the assertion
        try:
            postgresql.dispose(close=False)
        finally:
            os._exit(0)
    _, status = os.waitpid(child, 0)
    assert os.WEXITSTATUS(status) == 0
    after = execute_alone(postgresql, "SELECT pg_backend_pid() AS pid", {})
    assert after == before


# --- GroupedStatement ---------------------------------------------------------------------------

# Each request's value times ten (0 divides by zero; 7 has no row), the transaction that
# computed it, after a wait for an advisory lock that a test can hold: the first request's
# statement is held while the others queue behind it.
_ALONE = (
    "SELECT %(v)s::integer * 10 + 0 / %(v)s::integer AS out, txid_current()::text AS tx"
    " FROM (SELECT pg_advisory_xact_lock_shared(%(hold)s)) AS held WHERE %(v)s::integer <> 7"
)
_GROUPED = (
    "SELECT n, v * 10 + 0 / v AS out, txid_current()::text AS tx"
    " FROM unnest(%(v)s::integer[], %(hold)s::bigint[]) WITH ORDINALITY AS i (v, hold, n),"
    " LATERAL (SELECT pg_advisory_xact_lock_shared(hold)) AS held WHERE v <> 7"
)
_HOLD = 911


def _statement(
    conflicts: Callable[[Mapping[str, Any]], tuple[Hashable, ...]],
) -> GroupedStatement:
    return GroupedStatement(
        name="test", alone=_ALONE, grouped=_GROUPED, columns=("v", "hold"), conflicts=conflicts
    )


def _queued(
    engine: Engine, statement: GroupedStatement, values: list[int]
) -> dict[int, dict[str, Any] | BaseException | None]:
    """Run ``values`` through ``statement``, one thread each: the first alone, held by an
    advisory lock until every other one waits behind it; then each value's outcome."""
    outcomes: dict[int, dict[str, Any] | BaseException | None] = {}

    def run(value: int) -> None:
        try:
            outcomes[value] = statement.run(engine, {"v": value, "hold": _HOLD})
        except Exception as exc:
            outcomes[value] = exc

    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:hold)"), {"hold": _HOLD})
        holder.commit()
        first = threading.Thread(target=run, args=(values[0],))
        first.start()
        _until(lambda: _lock_waiters(engine) == 1)
        others = [threading.Thread(target=run, args=(value,)) for value in values[1:]]
        for thread in others:
            thread.start()
        _until(lambda: statement._queue.qsize() == len(others))
        holder.execute(text("SELECT pg_advisory_unlock(:hold)"), {"hold": _HOLD})
        holder.commit()
    for thread in [first, *others]:
        thread.join(timeout=30)
    return outcomes


def _lock_waiters(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            ).scalar_one()
        )


def _until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _rows(outcomes: dict[int, Any]) -> dict[int, dict[str, Any]]:
    return {value: outcome for value, outcome in outcomes.items() if isinstance(outcome, dict)}


def test_requests_that_wait_share_one_statement_and_each_gets_its_own_row(
    postgresql: Engine,
) -> None:
    statement = _statement(lambda params: (params["v"],))
    values = list(range(1, 13))
    outcomes = _queued(postgresql, statement, values)
    # 7 has no row, from either statement: None, as execute_alone gives.
    assert outcomes[7] is None
    rows = _rows(outcomes)
    assert {value: row["out"] for value, row in rows.items()} == {
        value: 10 * value for value in values if value != 7
    }
    first_tx = rows.pop(1)["tx"]
    # The eleven that queued went out together, in one transaction that is not the first's.
    assert {row["tx"] for row in rows.values()} == {rows[2]["tx"]} != {first_tx}


def test_conflicting_requests_never_share_a_statement(postgresql: Engine) -> None:
    # Values of one parity conflict: after the first, one odd and one even per statement.
    statement = _statement(lambda params: (params["v"] % 2,))
    outcomes = _queued(postgresql, statement, [1, 2, 3, 4, 5, 6])
    rows = _rows(outcomes)
    assert {value: row["out"] for value, row in rows.items()} == {
        value: 10 * value for value in range(1, 7)
    }
    statements: dict[str, list[int]] = {}
    for value, row in rows.items():
        statements.setdefault(row["tx"], []).append(value % 2)
    # Five waiting requests (two odd, three even) need three statements, the first's aside.
    assert sorted(sorted(parities) for parities in statements.values()) == [
        [0],
        [0, 1],
        [0, 1],
        [1],
    ]


def test_a_failing_grouped_statement_leaves_each_request_its_own_outcome(
    postgresql: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from psycopg import errors

    statement = _statement(lambda params: (params["v"],))
    # 0 divides by zero: the grouped statement fails, and each request then runs alone.
    outcomes = _queued(postgresql, statement, [1, 2, 0, 3, 7])
    assert isinstance(outcomes[0], errors.DivisionByZero)
    assert outcomes[7] is None
    rows = _rows(outcomes)
    assert {value: row["out"] for value, row in rows.items()} == {1: 10, 2: 20, 3: 30}
    assert len({row["tx"] for row in rows.values()}) == 3
    assert "a grouped statement (test) of 4 requests failed; running each alone" in caplog.text
    # The pool and the statement's thread are fit for the next request.
    assert statement.run(postgresql, {"v": 5, "hold": _HOLD}) == {"out": 50, "tx": ANY}


def test_requests_on_the_event_loop_wait_without_a_thread_and_get_their_rows(
    postgresql: Engine,
) -> None:
    statement = _statement(lambda params: (params["v"],))

    async def many() -> list[dict[str, Any] | None]:
        return await asyncio.gather(
            *(
                statement.run_async(postgresql, {"v": value, "hold": _HOLD})
                for value in range(1, 20)
            )
        )

    rows = asyncio.run(many())
    assert [row["out"] if row else None for row in rows] == [
        None if value == 7 else 10 * value for value in range(1, 20)
    ]
    # Nineteen requests at once on one loop: fewer statements than requests.
    assert len({row["tx"] for row in rows if row}) < 18


def test_a_request_whose_caller_gave_up_is_not_run_and_the_others_are(
    postgresql: Engine,
) -> None:
    statement = _statement(lambda params: (params["v"],))
    with postgresql.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:hold)"), {"hold": _HOLD})
        holder.commit()
        first = statement.submit(postgresql, {"v": 1, "hold": _HOLD})
        _until(lambda: _lock_waiters(postgresql) == 1)
        given_up = statement.submit(postgresql, {"v": 2, "hold": _HOLD})
        waiting = statement.submit(postgresql, {"v": 3, "hold": _HOLD})
        assert given_up.cancel()
        holder.execute(text("SELECT pg_advisory_unlock(:hold)"), {"hold": _HOLD})
        holder.commit()
    assert first.result(timeout=10)["out"] == 10
    assert waiting.result(timeout=10)["out"] == 30
    assert given_up.cancelled()
    assert statement.run(postgresql, {"v": 4, "hold": _HOLD})["out"] == 40
