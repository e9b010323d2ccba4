"""A supervisor publishes a notice in a real browser (Chromium through Playwright, the app on a
loopback port) and watches htmx refresh its progress until a real worker process has sent it.
Screenshots go to test-artifacts/ (1366×768) like the other browser tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

from hotline.public.models import Notice
from hotline.settings import Settings
from kb.articles import import_articles
from kb.subscriptions import subscribe
from tests.hotline.public.test_notices import _worker_env
from tests.hotline.web.conftest import Cast
from tests.hotline.web.test_browser import _login, _page, _shot, chromium, server
from tickets.models import Firm, OutboundMessage

pytestmark = pytest.mark.browser

__all__ = ["chromium", "server"]  # the fixtures, shared with the other browser tests

SLUG = "loan-interest-subsidy-2026"
SUBSCRIBERS = 6


@pytest.fixture
def worker(settings: Settings, session: Session) -> Iterator[subprocess.Popen[bytes]]:
    """A real `hotline worker`, killed (with its work horse) after the test."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hotline", "worker"],
        env=_worker_env(settings),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def test_a_supervisor_publishes_a_notice_and_watches_it_go_out(
    chromium: Browser,
    server: str,
    session: Session,
    cast: Cast,
    worker: subprocess.Popen[bytes],
) -> None:
    import_articles(session)
    phones = [f"+86136{n:08d}" for n in range(SUBSCRIBERS)]
    for phone in phones:
        subscribe(session, phone, ["financing"])
    session.add(Firm(phone=phones[0], sms_opted_out=True))
    session.commit()

    page = _page(chromium, server)
    _login(page, "zhao")
    page.click("header nav a[href='/supervisor/notices']")
    # Wait for the new page, and for htmx to have bound the form's change trigger: a select
    # changed before that (a robot can, a person cannot) asks for no audience count.
    page.wait_for_url("**/supervisor/notices")
    page.wait_for_load_state("networkidle")
    page.wait_for_function(
        "() => document.querySelector('[hx-get$=\"/notices/audience\"]')"
        "?.['htmx-internal-data']?.initHash"
    )
    page.select_option("select[name=article]", SLUG)
    # htmx asks for the audience's size as the form changes: the opted-out firm is left out.
    count = page.wait_for_selector(".audience-count", timeout=5000)
    assert count is not None and count.get_attribute("data-reachable") == str(SUBSCRIBERS - 1)
    _shot(page, "notices")
    page.click("#notice-preview")
    page.wait_for_selector("#notice-send", timeout=5000)
    assert "【中小企业服务热线】" in page.content()
    _shot(page, "notice-confirm")
    page.click("#notice-send")
    page.wait_for_url("**/supervisor/notices/*", timeout=5000)
    # The progress block refreshes itself (htmx polling) until the worker is done.
    page.wait_for_selector("#notice-progress[data-done=true]", timeout=60000)
    assert worker.poll() is None
    counts = {
        name: page.inner_text(f"[data-count={name}]")
        for name in ("total", "sent", "suppressed", "pending")
    }
    assert counts == {
        "total": str(SUBSCRIBERS),
        "sent": str(SUBSCRIBERS - 1),
        "suppressed": "1",
        "pending": "0",
    }
    _shot(page, "notice-progress")

    with Session(session.get_bind()) as check:
        notice = check.exec(select(Notice)).one()
        assert notice.created_by == "user:zhao"
        sent = check.exec(
            select(OutboundMessage.to_number).where(OutboundMessage.purpose == "notice")
        ).all()
    assert sorted(sent) == phones  # each once (the opted-out one recorded as suppressed)
