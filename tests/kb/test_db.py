"""kb.db's one-statement transactions (PostgreSQL only: SQLite runs everything in process)."""

from __future__ import annotations

import os
import signal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from kb.db import execute_alone
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
