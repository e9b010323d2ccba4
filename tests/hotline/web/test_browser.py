"""The pages in a real browser: Debian's Chromium driven by Playwright, against the app served
by uvicorn on a free loopback port. Screenshots of each page go to test-artifacts/ (1366×768).

These tests never skip: without /usr/bin/chromium (``make browser`` installs it) they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlmodel import Session, select

from hotline.accounts.service import create_user
from hotline.app import create_app
from hotline.settings import Settings
from hotline.wiring import configure_domain
from kb.db import utcnow
from tests.hotline.web.conftest import PASSWORD, Cast
from tests.live_server import serving
from tests.tickets.conftest import open_request
from tickets.models import Role, Ticket, TicketKind
from tickets.service import Actor, ticket_service

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
SYSTEM = Actor("system:test", Role.system)


@pytest.fixture
def server(settings: Settings, clean_db: object) -> Iterator[str]:
    with serving(
        lambda base: create_app(settings.model_copy(update={"public_base_url": base}))
    ) as base:
        yield base
    configure_domain(settings)  # the served app configured the domain for its own URL


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser`"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


def _page(chromium: Browser, base: str) -> Page:
    context = chromium.new_context(viewport={"width": 1366, "height": 768}, base_url=base)
    return context.new_page()


def _login(page: Page, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _ticket(session: Session, number: str) -> Ticket:
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return other.exec(select(Ticket).where(Ticket.number == number)).one()


def test_an_agent_claims_and_reroutes_and_the_institution_resolves(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    ticket = open_request(session, now=utcnow())
    ticket_service.dispatch(session, ticket, actor=SYSTEM)  # routed: candidates recorded
    first = ticket.institution_id
    staff = Actor("user:first", Role.institution, first)
    ticket_service.decline(session, ticket, actor=staff, note="不在服务范围", reroute=False)
    number = ticket.number
    session.commit()

    page = _page(chromium, server)
    _login(page, "li")
    assert page.url.endswith("/queue")
    _shot(page, "queue")
    page.click(f"text={number}")
    page.wait_for_load_state("networkidle")
    page.click("#act-claim")
    page.wait_for_selector(".done[data-done=claim]", timeout=5000)
    assert _ticket(session, number).assignee == "user:li"
    # A note, with markup that must stay text.
    page.fill("#note-text", "企业说<b>下午</b>方便接电话")
    page.click("#act-note")
    page.wait_for_selector(".done[data-done=note]", timeout=5000)
    assert page.locator("ol.timeline .note", has_text="企业说<b>下午</b>方便接电话").count() == 1
    # Re-classify: the firm's loan is for new equipment, a technology upgrade; routing runs again.
    page.select_option("#reclassify-to", "technology")
    page.fill("form[action$='/reclassify'] input[name=note]", "贷款用于技术改造，转技术创新服务")
    page.click("#act-reclassify")
    page.wait_for_selector(".done[data-done=reclassify]", timeout=5000)
    reclassified = _ticket(session, number)
    assert (reclassified.category, reclassified.state.value) == ("technology", "declined")
    assert page.locator("ol.timeline", has_text="投融资服务 → 技术创新和质量服务").count() == 1
    # Re-route: pick one of routing's candidates for the new category (the decliner left out).
    options = page.locator("#dispatch-to option")
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    chosen = next(v for v in values if v and int(v) != first)
    page.select_option("#dispatch-to", chosen)
    page.locator("section.acts").scroll_into_view_if_needed()
    _shot(page, "ticket")
    page.screenshot(path=str(ARTIFACTS / "ticket-full.png"), full_page=True)
    page.click("#act-dispatch")
    page.wait_for_selector(".done[data-done=dispatch]", timeout=5000)
    rerouted = _ticket(session, number)
    assert (rerouted.state.value, rerouted.institution_id) == ("dispatched", int(chosen))

    create_user(session, "chosen", "institution", institution_id=int(chosen), password=PASSWORD)
    session.commit()
    other = _page(chromium, server)
    _login(other, "chosen")
    assert other.url.endswith("/portal")
    _shot(other, "portal")
    other.click(f"text={number}")
    other.click("#act-accept")
    other.wait_for_selector(".done[data-done=accept]", timeout=5000)
    other.fill("form[action$='/resolve'] input[name=note]", "已对接贷款")
    other.locator("h1").click()  # out of the field: keys are shortcuts again
    other.keyboard.press("r")  # r marks it resolved
    other.wait_for_selector(".done[data-done=resolve]", timeout=5000)
    _shot(other, "ticket-resolved")
    assert _ticket(session, number).state.value == "resolved"


def test_an_institution_declines_and_the_ticket_goes_elsewhere(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    ticket = open_request(session, now=utcnow())
    ticket_service.dispatch(session, ticket, actor=SYSTEM, institution_id=cast.bank.id)
    number = ticket.number
    session.commit()

    page = _page(chromium, server)
    _login(page, "bank")
    page.click(f"text={number}")
    page.wait_for_load_state("networkidle")
    page.fill("form[action$='/decline'] input[name=note]", "本机构暂不受理此类贷款")
    page.click("#act-decline")
    # The ticket went to another institution: this one may no longer see it.
    page.wait_for_selector(".problem", timeout=5000)
    moved = _ticket(session, number)
    assert moved.state.value == "dispatched" and moved.institution_id != cast.bank.id
    page.goto("/portal")
    assert number not in page.content()

    agent = _page(chromium, server)
    _login(agent, "li")
    agent.goto(f"/tickets/{number}")
    assert "本机构暂不受理此类贷款" in agent.content()
    _shot(agent, "ticket-declined")


def test_a_supervisor_upholds_a_complaint(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    about = open_request(session, now=utcnow(), phone="+8613600136000")
    ticket_service.dispatch(session, about, actor=SYSTEM, institution_id=cast.bank.id)
    complaint = open_request(
        session,
        now=utcnow(),
        summary='机构一直不回电话<script>alert("x")</script>',
        category=None,
        kind=TicketKind.complaint,
        related=about,
    )
    numbers = complaint.number, about.number
    session.commit()

    page = _page(chromium, server)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _login(page, "zhao")
    assert page.url.endswith("/supervisor/complaints")
    _shot(page, "complaints")
    page.click(f"text={numbers[0]}")
    page.wait_for_load_state("networkidle")
    page.fill("form[action$='/uphold'] input[name=note]", "投诉属实")
    page.click("#act-uphold")
    page.wait_for_selector(".done[data-done=uphold]", timeout=5000)
    _shot(page, "complaint-upheld")
    assert _ticket(session, numbers[0]).state.value == "closed"
    assert _ticket(session, numbers[1]).state.value == "escalated"
    assert dialogs == []  # the hostile summary was text, not script


def test_english_and_keyboard_shortcuts(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    for i in range(3):
        open_request(session, now=utcnow(), phone=f"+861390013900{i}")
    session.commit()
    page = _page(chromium, server)
    page.goto("/login?lang=en")
    _shot(page, "login-en")
    _login(page, "li")
    assert "Open tickets" in page.content()
    page.keyboard.press("j")
    page.keyboard.press("j")
    assert page.locator("tr.row.sel").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_url("**/tickets/**")
    page.keyboard.press("c")
    page.wait_for_selector(".done[data-done=claim]", timeout=5000)


def test_the_dashboard_renders_its_charts(
    chromium: Browser, server: str, session: Session, cast: Cast
) -> None:
    for index, category in enumerate(("financing", "talent", "legal", "financing")):
        made = open_request(session, now=utcnow(), category=category, phone=f"+861380013801{index}")
        ticket_service.dispatch(session, made, actor=SYSTEM, institution_id=cast.bank.id)
    session.commit()
    page = _page(chromium, server)
    _login(page, "zhao")
    page.goto("/supervisor/dashboard")
    charts = page.locator("figure.chart svg")
    assert charts.count() == 4
    assert page.locator("figure.chart svg rect").count() >= 3
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 300
    _shot(page, "dashboard")
    page.goto("/supervisor/sla")
    _shot(page, "sla")


def test_the_admin_creates_a_user(chromium: Browser, server: str, cast: Cast) -> None:
    page = _page(chromium, server)
    page.goto("/login")
    _shot(page, "login")
    _login(page, "root")
    assert page.url.endswith("/admin/users")
    page.fill("form.stack input[name=username]", "newagent")
    page.fill("form.stack input[name=password]", "a-long-password")
    page.click("form.stack button[type=submit]")
    page.wait_for_selector("text=newagent", timeout=5000)
    _shot(page, "admin-users")
