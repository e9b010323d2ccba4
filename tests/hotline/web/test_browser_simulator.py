"""The phone simulator in a real browser (Chromium through Playwright, the app under uvicorn on
a loopback port, as in test_browser.py): an agent calls the hotline from the page, speaks by
typing, presses keys, and gets a ticket; a screenshot goes to test-artifacts/ (1366×768)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser
from sqlmodel import Session, select

from tests.hotline.test_voice_revisit import reload, resolved_and_called
from tests.hotline.web.conftest import Cast
from tests.hotline.web.test_browser import _login, _page, _shot, chromium, server
from tickets.models import Channel, OutboundCall, Ticket, TicketState

pytestmark = pytest.mark.browser
__all__ = ["chromium", "server"]  # the fixtures this module borrows

CALLER = "+8613800138777"


def test_an_agent_calls_the_hotline_from_the_page(
    chromium: Browser, server: str, session: Session, cast: Cast, sms_worker: None
) -> None:
    page = _page(chromium, server)
    _login(page, "li")
    page.click("header nav a[href='/simulator']")
    page.wait_for_selector("#sim-start")
    page.fill("#sim-caller", CALLER)
    page.click("#sim-call")
    page.wait_for_selector("#sim-keypad")
    assert "热线" in page.inner_text("#sim-transcript")
    page.click("#sim-silence")  # the greeting's keys are optional: say the need instead
    page.wait_for_selector("#sim-speech")
    page.fill("#sim-speech", "我们公司在渝北区，想申请一笔贷款扩大生产")
    page.click("#sim-say")
    page.wait_for_selector("#sim-transcript :text('投融资服务')")
    page.click("#sim-keypad button[data-key='1']")
    link = page.wait_for_selector("#sim-ticket-link", timeout=10000)
    assert link is not None
    number = link.inner_text().strip()
    with Session(session.get_bind()) as fresh:
        ticket = fresh.exec(select(Ticket).where(Ticket.number == number)).one()
    assert ticket.channel == Channel.voice and ticket.caller_phone == CALLER
    assert ticket.category == "financing"
    page.fill("#sim-body", "想找律师 合同纠纷 江北区")
    page.click("#sim-send")
    texted = page.wait_for_selector("#sim-sms-log a.sms-ticket", timeout=10000)
    assert texted is not None and texted.inner_text().strip() != number
    # The page fits the screen's width at 1366×768.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shot(page, "simulator")
    page.click("#sim-ticket-link")
    page.wait_for_url(f"**/tickets/{number}")
    assert number in page.inner_text("h1")


def test_an_agent_answers_a_revisit_call(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    ticket, url = resolved_and_called(session.get_bind())  # placed by the tickets service
    assert url.startswith(server)
    with Session(session.get_bind()) as fresh:
        placed = fresh.exec(select(OutboundCall)).one()
    page = _page(chromium, server)
    _login(page, "li")
    page.goto("/simulator")
    page.wait_for_selector(f"#sim-outbound-{placed.id}")
    assert ticket.number in page.inner_text(f"#sim-outbound-{placed.id}")
    _shot(page, "simulator-revisit-ringing")
    page.click(f"#sim-answer-{placed.id}")
    page.wait_for_selector("#sim-keypad")
    assert "回访" in page.inner_text("#sim-transcript")
    page.click("#sim-keypad button[data-key='1']")  # need met
    page.wait_for_selector("#sim-transcript :text('请按1到5打分')")
    page.click("#sim-keypad button[data-key='5']")
    page.wait_for_selector("#sim-recording")
    page.fill("#sim-recording", "办理很快，谢谢")
    page.click("#sim-record")
    page.wait_for_selector("#sim-transcript :text('感谢您的评价')")
    assert page.query_selector(f"#sim-outbound-{placed.id}") is None
    closed, _ = reload(session.get_bind(), ticket)
    assert closed.state == TicketState.closed and closed.satisfaction == 5
