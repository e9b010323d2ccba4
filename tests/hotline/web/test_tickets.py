"""The queue, the ticket page and its actions, and the portal: every role, allowed and
forbidden; CSRF; concurrent edits; masked phones and logged reveals; hostile text escaped."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from kb.db import utcnow
from tests.hotline.web.conftest import Browser, Cast, page_csrf
from tests.tickets.conftest import AGENT, open_request
from tickets.models import (
    Firm,
    InboundMessage,
    OutboxMessage,
    Role,
    Ticket,
    TicketEvent,
    TicketKind,
)
from tickets.service import Actor, ticket_service

PHONE = "+8613800138000"
MASKED = "138****8000"


def _fresh(session: Session, number: str) -> Ticket:
    """The ticket as committed now, read in a session of its own: the test's session holds no
    transaction open (SQLite's BEGIN IMMEDIATE would lock the app out)."""
    with Session(session.get_bind(), expire_on_commit=False) as other:
        return other.exec(select(Ticket).where(Ticket.number == number)).one()


def _claim_as_li(session: Session, number: str) -> None:
    ticket = session.exec(select(Ticket).where(Ticket.number == number)).one()
    ticket_service.claim(session, ticket, actor=LI)
    session.commit()


def _post(client: TestClient, number: str, action: str, **data: object):  # type: ignore[no-untyped-def]
    csrf = page_csrf(client, f"/tickets/{number}")
    form = {"csrf_token": csrf, **{k: str(v) for k, v in data.items()}}
    return client.post(f"/tickets/{number}/{action}", data=form, follow_redirects=False)


@pytest.fixture
def ticket(session: Session, cast: Cast) -> Ticket:
    opened = open_request(session, now=utcnow())
    session.commit()
    return opened


@pytest.fixture
def dispatched(session: Session, cast: Cast) -> Ticket:
    opened = open_request(session, now=utcnow())
    ticket_service.dispatch(session, opened, actor=AGENT, institution_id=cast.bank.id)
    session.commit()
    return opened


LI = Actor("user:li", Role.agent)


@pytest.fixture
def complaint(session: Session, cast: Cast) -> Ticket:
    """A complaint about agent li, who handled the ticket it is about."""
    handled = open_request(session, now=utcnow(), phone="+8613600136000")
    ticket_service.claim(session, handled, actor=LI)
    ticket_service.dispatch(session, handled, actor=LI, institution_id=cast.bank.id)
    made = open_request(
        session,
        now=utcnow(),
        summary="坐席态度很差",
        category=None,
        kind=TicketKind.complaint,
        related=handled,
        subject_agent="user:li",
    )
    session.commit()
    return made


# --- who may open what ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "path", "status"),
    [
        ("li", "/queue", 200),
        ("zhao", "/queue", 200),
        ("root", "/queue", 200),
        ("bank", "/queue", 403),
        ("li", "/queue/rows", 200),
        ("bank", "/queue/rows", 403),
        ("bank", "/portal", 200),
        ("bank", "/portal/rows", 200),
        ("li", "/portal", 403),
        ("zhao", "/portal", 403),
        ("root", "/portal", 403),
    ],
)
def test_pages_by_role(browser: Browser, cast: Cast, username: str, path: str, status: int) -> None:
    assert browser(username).get(path).status_code == status


@pytest.mark.parametrize(
    ("username", "status"),
    [("li", 200), ("wang", 200), ("zhao", 200), ("root", 200), ("bank", 200), ("other", 403)],
)
def test_ticket_page_by_role(
    browser: Browser, dispatched: Ticket, username: str, status: int
) -> None:
    assert browser(username).get(f"/tickets/{dispatched.number}").status_code == status


@pytest.mark.parametrize(
    ("username", "status"),
    [("li", 403), ("wang", 200), ("zhao", 200), ("bank", 403), ("other", 403)],
)
def test_complaints_are_hidden_from_their_subject_and_institutions(
    browser: Browser, complaint: Ticket, username: str, status: int
) -> None:
    assert browser(username).get(f"/tickets/{complaint.number}").status_code == status


def test_an_unknown_ticket_is_404(browser: Browser, cast: Cast) -> None:
    assert browser("li").get("/tickets/20260101-9999").status_code == 404


# --- the queue ----------------------------------------------------------------------------


def test_the_queue_lists_open_service_tickets_with_masked_phones(
    browser: Browser, ticket: Ticket, complaint: Ticket
) -> None:
    page = browser("zhao").get("/queue").text
    assert ticket.number in page and MASKED in page
    assert PHONE not in page and "13800138000" not in page
    assert complaint.number not in page  # complaints live in the supervisors' inbox


def test_queue_filters_and_search(browser: Browser, cast: Cast, session: Session) -> None:
    loan = open_request(session, now=utcnow())
    training = open_request(
        session, now=utcnow(), summary="想参加培训", category="talent", phone="+8613900139000"
    )
    session.commit()
    client = browser("li")
    by_category = client.get("/queue", params={"category": "talent"}).text
    assert training.number in by_category and loan.number not in by_category
    by_phone = client.get("/queue", params={"q": "13900139000"}).text
    assert training.number in by_phone and loan.number not in by_phone
    by_number = client.get("/queue", params={"q": loan.number}).text
    assert loan.number in by_number and training.number not in by_number
    nothing = client.get("/queue", params={"q": "hello"}).text
    assert loan.number not in nothing and "没有符合条件的工单" in nothing
    _claim_as_li(session, loan.number)
    mine = client.get("/queue", params={"assigned": "mine"}).text
    assert loan.number in mine and training.number not in mine
    unassigned = client.get("/queue", params={"assigned": "unassigned"}).text
    assert training.number in unassigned and loan.number not in unassigned
    # The polling URL carries the same filters, so a refresh does not lose them.
    assert 'hx-get="/queue/rows?assigned=unassigned"' in unassigned


def test_the_queue_is_keyset_paginated(browser: Browser, cast: Cast, session: Session) -> None:
    numbers = [
        open_request(session, now=utcnow(), phone=f"+86139001390{i:02d}").number for i in range(30)
    ]
    session.commit()
    client = browser("li")
    first = client.get("/queue").text
    cursor = re.search(r"cursor=([A-Za-z0-9_-]+)", first)
    assert cursor
    rest = client.get("/queue/rows", params={"cursor": cursor.group(1)}).text
    shown_first = {n for n in numbers if n in first}
    shown_rest = {n for n in numbers if n in rest}
    assert len(shown_first) == 25 and len(shown_rest) == 5
    assert shown_first | shown_rest == set(numbers)
    assert client.get("/queue", params={"cursor": "garbage!"}).status_code == 200


def test_the_portal_lists_only_the_institutions_tickets(
    browser: Browser, dispatched: Ticket, ticket: Ticket
) -> None:
    mine = browser("bank").get("/portal").text
    assert dispatched.number in mine and ticket.number not in mine
    assert dispatched.number not in browser("other").get("/portal").text


# --- actions ------------------------------------------------------------------------------


def test_an_agent_claims_and_dispatches(
    browser: Browser, ticket: Ticket, cast: Cast, session: Session
) -> None:
    client = browser("li")
    answer = _post(client, ticket.number, "claim", version=1)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/tickets/{ticket.number}?done=claim"
    assert _fresh(session, ticket.number).assignee == "user:li"
    answer = _post(client, ticket.number, "dispatch", version=2, institution_id=cast.bank.id)
    assert answer.status_code == 303
    fresh = _fresh(session, ticket.number)
    assert (fresh.state.value, fresh.institution_id) == ("dispatched", cast.bank.id)


def test_a_stale_version_shows_who_changed_it(
    browser: Browser, ticket: Ticket, session: Session
) -> None:
    wang, li = browser("wang"), browser("li")
    assert _post(wang, ticket.number, "claim", version=1).status_code == 303
    answer = _post(li, ticket.number, "claim", version=1)
    assert answer.status_code == 409
    assert "user:wang" in answer.text and "第 2 版" in answer.text
    assert _fresh(session, ticket.number).assignee == "user:wang"  # never overwritten


def test_actions_need_the_csrf_token(browser: Browser, ticket: Ticket, session: Session) -> None:
    client = browser("li")
    forged = client.post(
        f"/tickets/{ticket.number}/claim", data={"version": "1"}, follow_redirects=False
    )
    assert forged.status_code == 403
    wrong = client.post(
        f"/tickets/{ticket.number}/claim",
        data={"version": "1", "csrf_token": "x"},
        headers={"X-CSRF-Token": "not-it"},
        follow_redirects=False,
    )
    assert wrong.status_code == 403
    assert _fresh(session, ticket.number).assignee is None
    # htmx sends the token as a header.
    csrf = page_csrf(client, "/queue")
    ok = client.post(
        f"/tickets/{ticket.number}/claim",
        data={"version": "1"},
        headers={"X-CSRF-Token": csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_another_users_csrf_token_does_not_work(
    browser: Browser, ticket: Ticket, session: Session
) -> None:
    theirs = page_csrf(browser("wang"), "/queue")
    mine = browser("li")
    answer = mine.post(
        f"/tickets/{ticket.number}/claim",
        data={"version": "1", "csrf_token": theirs},
        follow_redirects=False,
    )
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("username", "action", "status"),
    [
        ("li", "accept", 403),
        ("zhao", "accept", 303),
        ("bank", "accept", 303),
        ("other", "accept", 403),
        ("bank", "claim", 403),
        ("bank", "dispatch", 403),  # not their action (checked before the state)
        ("li", "uphold", 409),
        ("root", "accept", 303),
    ],
)
def test_actions_by_role(
    browser: Browser, dispatched: Ticket, username: str, action: str, status: int
) -> None:
    answer = _post(browser(username), dispatched.number, action, version=dispatched.version)
    assert answer.status_code == status, answer.text[:400]


def test_an_institution_declines_with_a_reason_and_it_goes_elsewhere(
    browser: Browser, dispatched: Ticket, cast: Cast, session: Session
) -> None:
    client = browser("bank")
    without = _post(client, dispatched.number, "decline", version=dispatched.version)
    assert without.status_code == 422
    answer = _post(
        client, dispatched.number, "decline", version=dispatched.version, note="不在服务范围"
    )
    assert answer.status_code == 303
    fresh = _fresh(session, dispatched.number)
    assert fresh.state.value == "dispatched" and fresh.institution_id != cast.bank.id
    assert dispatched.number not in client.get("/portal").text
    assert client.get(f"/tickets/{dispatched.number}").status_code == 403


def test_an_institution_accepts_and_resolves(
    browser: Browser, dispatched: Ticket, session: Session
) -> None:
    client = browser("bank")
    assert _post(client, dispatched.number, "accept", version=2).status_code == 303
    assert _post(client, dispatched.number, "resolve", version=3, note="已放款").status_code == 303
    assert _fresh(session, dispatched.number).state.value == "resolved"


def test_a_supervisor_reopens_and_an_agent_cancels_a_duplicate(
    browser: Browser, cast: Cast, session: Session
) -> None:
    original = open_request(session, now=utcnow())
    copy = open_request(session, now=utcnow(), summary="再问一次贷款的事", phone="+8613700137000")
    session.commit()
    answer = _post(
        browser("li"),
        copy.number,
        "cancel",
        version=1,
        reason="duplicate",
        duplicate_of=original.number,
    )
    assert answer.status_code == 303
    fresh = _fresh(session, copy.number)
    assert fresh.state.value == "cancelled" and fresh.duplicate_of_id == original.id


def test_an_unknown_action_is_404(browser: Browser, ticket: Ticket) -> None:
    assert _post(browser("li"), ticket.number, "explode").status_code == 404


# --- phones and escaping --------------------------------------------------------------------


def test_the_ticket_page_masks_the_phone_until_a_logged_reveal(
    browser: Browser, ticket: Ticket, session: Session
) -> None:
    client = browser("li")
    page = client.get(f"/tickets/{ticket.number}").text
    assert MASKED in page and PHONE not in page
    forged = client.post(f"/tickets/{ticket.number}/reveal", follow_redirects=False)
    assert forged.status_code == 403
    csrf = page_csrf(client, f"/tickets/{ticket.number}")
    shown = client.post(
        f"/tickets/{ticket.number}/reveal",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert shown.status_code == 200 and PHONE in shown.text
    reveals = session.exec(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "phone_reveal"
        )
    ).all()
    assert [(e.actor, e.actor_role) for e in reveals] == [("user:li", "agent")]


def test_an_admin_does_not_reveal_phones(browser: Browser, ticket: Ticket) -> None:
    client = browser("root")
    assert "显示完整号码" not in client.get(f"/tickets/{ticket.number}").text
    csrf = page_csrf(client, f"/tickets/{ticket.number}")
    answer = client.post(f"/tickets/{ticket.number}/reveal", data={"csrf_token": csrf})
    assert answer.status_code == 403


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_hostile_sms_bodies_are_shown_as_text(
    browser: Browser, cast: Cast, session: Session
) -> None:
    made = open_request(session, now=utcnow(), summary=HOSTILE)
    session.add(
        InboundMessage(
            message_sid="SM" + "9" * 32,
            from_number=PHONE,
            body=HOSTILE,
            ticket_id=made.id,
            reply="<b>reply</b>",
        )
    )
    session.commit()
    for path in (f"/tickets/{made.number}", "/queue", f"/queue?q={HOSTILE}"):
        page = browser("li").get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page and "<b>reply" not in page
    page = browser("li").get(f"/tickets/{made.number}").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


# --- the page's other actions: release, re-classify, note, SMS, reveal -----------------------


@pytest.fixture
def held(session: Session, cast: Cast) -> Ticket:
    """A ticket dispatched to the bank and claimed by agent li (version 3)."""
    opened = open_request(session, now=utcnow())
    ticket_service.claim(session, opened, actor=LI)
    ticket_service.dispatch(session, opened, actor=LI, institution_id=cast.bank.id)
    session.commit()
    return opened


def _events_of(session: Session, ticket: Ticket) -> list[TicketEvent]:
    with Session(session.get_bind()) as other:
        return list(
            other.exec(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(TicketEvent.id)  # type: ignore[arg-type]
            ).all()
        )


# What each action needs in its form, and the event it writes.
FORMS = {
    "release": {},
    "reclassify": {"category": "legal", "note": "合同纠纷，属法律服务"},
    "note": {"note": "企业下午三点后方便接电话"},
    "sms": {"note": "您的诉求已转交服务机构"},
}


@pytest.mark.parametrize(
    ("username", "action", "status"),
    [
        ("li", "release", 303),
        ("wang", "release", 403),  # not their claim
        ("zhao", "release", 303),
        ("root", "release", 303),
        ("bank", "release", 403),
        ("other", "release", 403),
        ("li", "reclassify", 303),
        ("zhao", "reclassify", 303),
        ("root", "reclassify", 303),
        ("bank", "reclassify", 403),
        ("other", "reclassify", 403),
        ("li", "note", 303),
        ("zhao", "note", 303),
        ("root", "note", 303),
        ("bank", "note", 303),  # a progress note on its own ticket
        ("other", "note", 403),
        ("li", "sms", 303),
        ("zhao", "sms", 303),
        ("root", "sms", 403),
        ("bank", "sms", 403),
        ("other", "sms", 403),
    ],
)
def test_page_actions_by_role(
    browser: Browser, held: Ticket, session: Session, username: str, action: str, status: int
) -> None:
    before = len(_events_of(session, held))
    answer = _post(browser(username), held.number, action, version=held.version, **FORMS[action])
    assert answer.status_code == status, answer.text[:400]
    events = _events_of(session, held)
    if status == 303:
        assert answer.headers["location"] == f"/tickets/{held.number}?done={action}"
        assert events[-1].action == action and events[-1].actor == f"user:{username}"
        assert _fresh(session, held.number).version == held.version + 1
    else:
        assert len(events) == before  # refused: nothing written


@pytest.mark.parametrize("action", [*FORMS, "reveal"])
def test_page_actions_refuse_the_anonymous(
    anonymous: TestClient, held: Ticket, session: Session, action: str
) -> None:
    before = len(_events_of(session, held))
    answer = anonymous.post(
        f"/tickets/{held.number}/{action}",
        data={"version": str(held.version), **FORMS.get(action, {})},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert len(_events_of(session, held)) == before


@pytest.mark.parametrize("action", [*FORMS, "reveal"])
def test_page_actions_need_the_csrf_token(
    browser: Browser, held: Ticket, session: Session, action: str
) -> None:
    client = browser("li")
    before = len(_events_of(session, held))
    for token in ({}, {"csrf_token": "forged"}):
        answer = client.post(
            f"/tickets/{held.number}/{action}",
            data={"version": str(held.version), **FORMS.get(action, {}), **token},
            follow_redirects=False,
        )
        assert answer.status_code == 403
        assert "表单已失效" in answer.text
    assert len(_events_of(session, held)) == before
    assert _fresh(session, held.number).version == held.version


@pytest.mark.parametrize(
    ("username", "status"),
    [("li", 200), ("zhao", 200), ("bank", 200), ("root", 403), ("other", 403)],
)
def test_reveal_by_role(
    browser: Browser, held: Ticket, session: Session, username: str, status: int
) -> None:
    client = browser(username)
    csrf = page_csrf(client, "/queue" if username in ("li", "zhao", "root") else "/portal")
    answer = client.post(f"/tickets/{held.number}/reveal", data={"csrf_token": csrf})
    assert answer.status_code == status
    reveals = [e.actor for e in _events_of(session, held) if e.action == "phone_reveal"]
    assert reveals == ([f"user:{username}"] if status == 200 else [])
    assert (PHONE in answer.text) == (status == 200)
    assert _fresh(session, held.number).version == held.version  # a reveal changes nothing


def test_the_callback_roles_are_the_domains() -> None:
    from hotline.authz import CALLBACK_ROLES
    from tickets import lifecycle

    assert lifecycle.CALLBACK == CALLBACK_ROLES


@pytest.mark.parametrize("action", ["reclassify", "note", "release", "sms", "dispatch"])
def test_a_stale_page_action_shows_who_changed_it_and_the_new_state(
    browser: Browser, ticket: Ticket, session: Session, action: str
) -> None:
    _claim_as_li(session, ticket.number)  # version 2
    wang = browser("wang")
    assert _post(wang, ticket.number, "note", version=2, note="王已回电").status_code == 303
    fields = {**FORMS.get(action, {}), "institution_id": ""}
    answer = _post(browser("li"), ticket.number, action, version=2, **fields)
    assert answer.status_code == 409
    assert "工单已被 user:wang 修改（现为第 3 版，状态：新建）" in answer.text
    assert "王已回电" in answer.text  # the page shows the ticket as it is now
    fresh = _fresh(session, ticket.number)
    assert (fresh.version, fresh.category, fresh.assignee) == (3, "financing", "user:li")
    assert [e.action for e in _events_of(session, ticket)][-1] == "note"


def test_a_note_with_hostile_html_is_shown_as_text(
    browser: Browser, ticket: Ticket, session: Session
) -> None:
    client = browser("li")
    assert _post(client, ticket.number, "note", version=1, note=HOSTILE).status_code == 303
    page = client.get(f"/tickets/{ticket.number}").text
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_reclassify_through_the_page_routes_again(
    browser: Browser, held: Ticket, cast: Cast, session: Session
) -> None:
    client = browser("li")
    empty = _post(client, held.number, "reclassify", version=3, category="legal", note=" ")
    assert empty.status_code == 422 and "needs a reason" in empty.text
    unknown = _post(client, held.number, "reclassify", version=3, category="magic", note="x")
    assert unknown.status_code == 422 and "no service category" in unknown.text
    answer = _post(client, held.number, "reclassify", version=3, **FORMS["reclassify"])
    assert answer.status_code == 303
    fresh = _fresh(session, held.number)
    assert fresh.category == "legal" and fresh.institution_id != cast.bank.id
    page = client.get(answer.headers["location"]).text
    assert 'data-done="reclassify"' in page
    assert "合同纠纷，属法律服务" in page and "投融资服务 → 法律服务" in page


def test_sms_honours_the_opt_out_on_the_page(
    browser: Browser, ticket: Ticket, session: Session
) -> None:
    client = browser("li")
    assert 'id="act-sms"' in client.get(f"/tickets/{ticket.number}").text
    assert _post(client, ticket.number, "sms", version=1, note="已受理").status_code == 303
    jobs = session.exec(select(OutboxMessage).where(OutboxMessage.task == "sms_firm")).all()
    assert len(jobs) == 1
    firm = session.get_one(Firm, ticket.firm_id)
    firm.sms_opted_out = True
    session.add(firm)
    session.commit()
    page = client.get(f"/tickets/{ticket.number}").text
    assert 'id="act-sms"' not in page and "该企业已退订短信" in page
    refused = _post(client, ticket.number, "sms", version=2, note="再发一条")
    assert refused.status_code == 422 and "opted out of SMS" in refused.text
    assert (
        len(session.exec(select(OutboxMessage).where(OutboxMessage.task == "sms_firm")).all()) == 1
    )


def test_reroute_from_a_searched_institution(
    browser: Browser, ticket: Ticket, cast: Cast, session: Session
) -> None:
    client = browser("li")
    page = client.get(f"/tickets/{ticket.number}").text
    suggested = re.search(r'<optgroup label="路由推荐（按得分）">\s*<option value="(\d+)">', page)
    assert suggested  # routing's choice and runners-up, with their scores
    window = "win-yubei"
    found = client.get(f"/tickets/{ticket.number}", params={"find": "WIN-YUBEI"}).text
    option = re.search(r'<optgroup label="搜索结果">\s*<option value="(\d+)">', found)
    assert option, found[:2000]
    nothing = client.get(f"/tickets/{ticket.number}", params={"find": "no such place%"}).text
    assert "没有找到匹配的机构" in nothing
    answer = _post(client, ticket.number, "dispatch", version=1, institution_id=option.group(1))
    assert answer.status_code == 303
    fresh = _fresh(session, ticket.number)
    assert fresh.institution_id == int(option.group(1))
    with Session(session.get_bind()) as other:
        from kb.models import Institution

        assert other.get_one(Institution, fresh.institution_id).code == window


def test_cancel_as_duplicate_searches_the_original(
    browser: Browser, cast: Cast, session: Session
) -> None:
    original = open_request(session, now=utcnow())
    elsewhere = open_request(session, now=utcnow(), phone="+8613700137000")
    copy = open_request(session, now=utcnow(), summary="再问一次贷款的事")  # same caller
    session.commit()
    client = browser("li")
    page = client.get(f"/tickets/{copy.number}").text
    assert f'<option value="{original.number}">' in page  # the same caller's other ticket
    assert f'<option value="{elsewhere.number}">' not in page
    searched = client.get(f"/tickets/{copy.number}", params={"original": "13700137000"}).text
    assert f'value="{elsewhere.number}"' in searched
    unknown = _post(
        client, copy.number, "cancel", version=1, reason="duplicate", duplicate_of="CQ2601010001-A"
    )
    assert unknown.status_code == 422 and "to be the original" in unknown.text
    answer = _post(
        client, copy.number, "cancel", version=1, reason="duplicate", duplicate_of=original.number
    )
    assert answer.status_code == 303
    assert _fresh(session, copy.number).duplicate_of_id == original.id


def test_the_claimant_sees_release_not_claim(browser: Browser, held: Ticket) -> None:
    mine = browser("li").get(f"/tickets/{held.number}").text
    assert 'id="act-release"' in mine
    theirs = browser("wang").get(f"/tickets/{held.number}").text
    assert 'id="act-release"' not in theirs
    assert 'id="act-release"' in browser("zhao").get(f"/tickets/{held.number}").text
    institution = browser("bank").get(f"/tickets/{held.number}").text
    assert 'id="act-note"' in institution
    assert not re.search(r'id="act-(release|reclassify|sms|dispatch|cancel)"', institution)
