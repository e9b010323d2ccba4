"""The complaints inbox and the supervisor's review; the demo users."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from hotline.accounts.models import User
from hotline.web.demo import DEMO_PASSWORD, seed
from kb.db import utcnow
from tests.hotline.web.conftest import Browser, Cast, page_csrf
from tests.tickets.conftest import open_request
from tickets.models import Role, Ticket, TicketKind
from tickets.service import Actor, ticket_service

LI = Actor("user:li", Role.agent)


@pytest.fixture
def complaint(session: Session, cast: Cast) -> tuple[str, str]:
    handled = open_request(session, now=utcnow(), phone="+8613600136000")
    ticket_service.dispatch(session, handled, actor=LI, institution_id=cast.bank.id)
    made = open_request(
        session,
        now=utcnow(),
        summary="机构一直没有回电话 <b>差评</b>",
        category=None,
        kind=TicketKind.complaint,
        related=handled,
    )
    session.commit()
    return made.number, handled.number


def _state(session: Session, number: str) -> Ticket:
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return other.exec(select(Ticket).where(Ticket.number == number)).one()


@pytest.mark.parametrize(
    ("username", "status"), [("zhao", 200), ("root", 200), ("li", 403), ("bank", 403)]
)
def test_the_inbox_is_for_supervisors(
    browser: Browser, cast: Cast, username: str, status: int
) -> None:
    assert browser(username).get("/supervisor/complaints").status_code == status


def test_a_supervisor_upholds_a_complaint(
    browser: Browser, complaint: tuple[str, str], session: Session
) -> None:
    number, about = complaint
    client = browser("zhao")
    inbox = client.get("/supervisor/complaints").text
    assert number in inbox and about in inbox and "&lt;b&gt;差评" in inbox
    assert "<b>差评" not in inbox
    csrf = page_csrf(client, f"/tickets/{number}")
    answer = client.post(
        f"/tickets/{number}/uphold",
        data={"csrf_token": csrf, "version": "1", "note": "属实"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert _state(session, number).state.value == "closed"
    assert _state(session, about).state.value == "escalated"
    assert number not in client.get("/supervisor/complaints").text


def test_a_supervisor_dismisses_with_a_note(
    browser: Browser, complaint: tuple[str, str], session: Session
) -> None:
    number, about = complaint
    client = browser("zhao")
    csrf = page_csrf(client, f"/tickets/{number}")
    answer = client.post(
        f"/tickets/{number}/dismiss",
        data={"csrf_token": csrf, "version": "1", "note": "已核实，机构已回电"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert _state(session, number).closure is not None
    assert _state(session, about).state.value == "dispatched"


def test_agents_may_not_uphold(browser: Browser, complaint: tuple[str, str]) -> None:
    number, _ = complaint
    client = browser("wang")
    csrf = page_csrf(client, f"/tickets/{number}")
    answer = client.post(f"/tickets/{number}/uphold", data={"csrf_token": csrf, "version": "1"})
    assert answer.status_code == 403


def test_seed_demo_is_idempotent(session: Session) -> None:
    first = seed(session, password=DEMO_PASSWORD)
    session.commit()
    again = seed(session, password=DEMO_PASSWORD)
    assert all("created" in line for line in first) and all("exists" in line for line in again)
    roles = {u.username: u.role for u in session.exec(select(User)).all()}
    assert roles["agent"] == Role.agent and roles["inst1"] == Role.institution
    assert roles["supervisor"] == Role.supervisor and roles["admin"] == Role.admin


@pytest.mark.parametrize(
    "path", ["/supervisor/dashboard", "/supervisor/sla", "/supervisor/export.csv"]
)
@pytest.mark.parametrize(
    ("username", "status"), [("zhao", 200), ("root", 200), ("li", 403), ("bank", 403)]
)
def test_console_pages_by_role(
    browser: Browser, cast: Cast, path: str, username: str, status: int
) -> None:
    assert browser(username).get(path).status_code == status


def test_the_dashboard_draws_svg_charts(
    browser: Browser, complaint: tuple[str, str], session: Session
) -> None:
    open_request(session, now=utcnow(), summary="想参加培训", category="talent")
    session.commit()
    page = browser("zhao").get("/supervisor/dashboard").text
    assert page.count("<svg") == 4 and "<rect" in page
    assert "人才与培训服务" in page and "渝北区" in page
    english = browser("zhao").get("/supervisor/dashboard", params={"lang": "en", "days": "7"})
    assert "Requests by category" in english.text


def test_the_csv_export_masks_phones(
    browser: Browser, complaint: tuple[str, str], session: Session
) -> None:
    answer = browser("zhao").get("/supervisor/export.csv")
    assert answer.headers["content-type"].startswith("text/csv")
    body = answer.text
    number, about = complaint
    assert number in body and about in body
    assert "136****6000" in body and "13600136000" not in body


def test_the_sla_board_lists_open_tickets(browser: Browser, complaint: tuple[str, str]) -> None:
    _, about = complaint
    page = browser("zhao").get("/supervisor/sla").text
    assert about in page and "136****6000" in page


def test_chart_labels_fit_their_column() -> None:
    from hotline.web.charts import bars, fit

    assert fit("渝北区") == "渝北区"
    long = fit("嘉汇银行万州知行支行小微企业服务中心（演示）")
    assert long.endswith("…") and len(long) <= 12
    chart = bars("t", [("a", 2), ("b", None), ("c", 4)])
    assert [bar.label for bar in chart.bars] == ["c", "a", "b"]
    assert chart.bars[0].width == 360 and chart.bars[2].text == "—"
