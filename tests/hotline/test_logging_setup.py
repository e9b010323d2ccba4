"""The JSON log handler's batches: lines below WARNING wait (at most ``flush_seconds``), a
WARNING brings them out at once, nothing is lost at exit nor written twice after a fork."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.logging_setup import BATCH_CHARS, configure_from_settings, configure_logging
from hotline.settings import Settings

log = logging.getLogger("hotline.test.batches")


@pytest.fixture
def installed() -> Iterator[list[logging.Handler]]:
    """Handlers a test installs; removed and closed after it."""
    handlers: list[logging.Handler] = []
    yield handlers
    for handler in handlers:
        logging.getLogger().removeHandler(handler)
        handler.close()
    logging.getLogger().setLevel(logging.WARNING)


def _messages(text: str) -> list[str]:
    return [str(json.loads(line)["message"]) for line in text.splitlines() if line.strip()]


def test_lines_below_warning_wait_then_come_out_in_order(
    installed: list[logging.Handler],
) -> None:
    stream = io.StringIO()
    installed.append(configure_logging("INFO", stream=stream, flush_seconds=0.2))
    for n in range(3):
        log.info("line %d", n)
    assert stream.getvalue() == ""
    deadline = time.monotonic() + 5
    while not stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _messages(stream.getvalue()) == ["line 0", "line 1", "line 2"]


def test_a_warning_is_written_at_once_after_the_lines_waiting_before_it(
    installed: list[logging.Handler],
) -> None:
    stream = io.StringIO()
    installed.append(configure_logging("INFO", stream=stream, flush_seconds=60))
    log.info("first")
    log.info("second")
    log.warning("trouble")
    assert _messages(stream.getvalue()) == ["first", "second", "trouble"]


def test_a_full_batch_is_written_without_waiting(installed: list[logging.Handler]) -> None:
    stream = io.StringIO()
    installed.append(configure_logging("INFO", stream=stream, flush_seconds=60))
    line = "x" * 1000
    for _ in range(BATCH_CHARS // 1000 + 1):
        log.info(line)
    written = stream.getvalue()
    assert len(written) >= BATCH_CHARS
    assert set(_messages(written)) == {line}


def test_replacing_the_handler_writes_what_the_old_one_held(
    installed: list[logging.Handler],
) -> None:
    first, second = io.StringIO(), io.StringIO()
    installed.append(configure_logging("INFO", stream=first, flush_seconds=60))
    log.info("held")
    installed.append(configure_logging("INFO", stream=second, flush_seconds=60))
    assert _messages(first.getvalue()) == ["held"]
    assert second.getvalue() == ""


def test_without_batches_each_line_is_written_at_once(installed: list[logging.Handler]) -> None:
    stream = io.StringIO()
    installed.append(configure_logging("INFO", stream=stream))
    log.info("now")
    assert _messages(stream.getvalue()) == ["now"]


def test_the_settings_choose_the_batches(
    settings: Settings, installed: list[logging.Handler]
) -> None:
    handler = configure_from_settings(settings.model_copy(update={"log_flush_seconds": 0.7}))
    installed.append(handler)
    assert getattr(handler, "flush_seconds", None) == 0.7


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_does_not_write_its_parents_waiting_lines_again(
    tmp_path: Path, installed: list[logging.Handler]
) -> None:
    path = tmp_path / "log.jsonl"
    with path.open("a", encoding="utf-8") as stream:
        handler = configure_logging("INFO", stream=stream, flush_seconds=60)
        installed.append(handler)
        log.info("before the fork")
        pid = os.fork()
        if pid == 0:  # the child: one line of its own, then out without the parent's atexit
            try:
                log.info("in the child")
                handler.flush()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        log.info("after the fork")
        handler.flush()
    messages = _messages(path.read_text(encoding="utf-8"))
    assert sorted(messages) == ["after the fork", "before the fork", "in the child"]
    assert messages[0] == "before the fork"


def test_a_process_that_exits_writes_what_was_waiting() -> None:
    program = (
        "import logging\n"
        "from hotline.logging_setup import configure_logging\n"
        "configure_logging('INFO', flush_seconds=60)\n"
        "logging.getLogger('hotline.test').info('last words')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert _messages(done.stderr) == ["last words"]
