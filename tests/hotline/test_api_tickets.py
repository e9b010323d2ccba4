"""The tickets JSON API over the real app: bearer tokens, visibility by role, one POST per
transition with 403 / 409 / 422 answers, keyset pagination and the measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hotline.accounts.service import create_user, issue_token
from hotline.api_tickets import Action
from kb.db import utcnow
from kb.models import Institution
from tests.hotline.problems import problem
from tests.tickets.conftest import local, open_request, service_institutions
from tickets import lifecycle, service
from tickets.models import OutboxMessage, TicketKind
from tickets.service import Actor


@dataclass
class People:
    agent: dict[str, str]
    other_agent: dict[str, str]
    supervisor: dict[str, str]
    admin: dict[str, str]
    bank_staff: dict[str, str]
    other_staff: dict[str, str]
    bank: Institution
    other_bank: Institution


def _bearer(
    session: Session, username: str, role: str, institution_id: int | None = None
) -> dict[str, str]:
    user = create_user(session, username, role, institution_id=institution_id)
    return {"Authorization": f"Bearer {issue_token(session, user)}"}


@pytest.fixture
def people(session: Session) -> People:
    bank, other_bank = service_institutions(session, "financing")[:2]
    found = People(
        agent=_bearer(session, "li", "agent"),
        other_agent=_bearer(session, "wang", "agent"),
        supervisor=_bearer(session, "zhao", "supervisor"),
        admin=_bearer(session, "root", "admin"),
        bank_staff=_bearer(session, "bank", "institution", bank.id),
        other_staff=_bearer(session, "other", "institution", other_bank.id),
        bank=bank,
        other_bank=other_bank,
    )
    session.commit()
    return found


def _post(client: TestClient, who: dict[str, str], number: str, action: str, **body: object):  # type: ignore[no-untyped-def]
    return client.post(f"/api/tickets/{number}/{action}", json=body, headers=who)


def test_a_token_is_required(client: TestClient) -> None:
    assert client.get("/api/tickets").status_code == 401
    bad = client.get("/api/tickets", headers={"Authorization": "Bearer hl_nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"


def test_a_case_through_the_api(
    client: TestClient, session: Session, people: People, clean_db: Engine
) -> None:
    ticket = open_request(session, now=utcnow())  # the API acts at the real time
    session.commit()
    number = ticket.number

    answer = _post(
        client, people.agent, number, "dispatch", version=1, institution_id=people.bank.id
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["version"], body["institution_id"]) == (
        "dispatched",
        2,
        people.bank.id,
    )
    assert body["caller_phone"] == "138****8000"
    assert [c["name"] for c in body["clocks"]] == ["accept", "contact", "resolve"]
    assert body["clocks"][0]["status"] in ("running", "overdue")
    assert body["routing"]["reasons"][0]["code"] == "manual"
    # The SLA timers the dispatch needs are in the outbox, due hours ahead: the workers'
    # periodic relay moves them into RQ, not the web process after its answer.
    with Session(clean_db) as check:
        rows = check.exec(select(OutboxMessage)).all()
        assert len(rows) == 3 and all(r.relayed_at is None and r.run_at for r in rows)

    # Agents do not accept; other institutions do not even see it.
    assert _post(client, people.agent, number, "accept", version=2).status_code == 403
    assert _post(client, people.other_staff, number, "accept", version=2).status_code == 403
    assert client.get(f"/api/tickets/{number}", headers=people.other_staff).status_code == 403

    assert _post(client, people.bank_staff, number, "accept", version=2).status_code == 200
    stale = _post(client, people.bank_staff, number, "start", version=2, note="calling")
    assert stale.status_code == 409
    assert (stale.json()["state"], stale.json()["version"]) == ("accepted", 3)
    illegal = _post(client, people.bank_staff, number, "accept", version=3)
    assert illegal.status_code == 409 and "cannot accept" in illegal.json()["error"]
    assert illegal.json()["state"] == "accepted"
    assert _post(client, people.bank_staff, number, "start", version=3).status_code == 200
    resolved = _post(client, people.bank_staff, number, "resolve", version=4, note="loan granted")
    assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
    assert _post(client, people.agent, number, "reopen", version=5).status_code == 403
    reopened = _post(client, people.supervisor, number, "reopen", version=5, note="firm disagrees")
    assert reopened.status_code == 200 and reopened.json()["reopen_count"] == 1

    detail = client.get(f"/api/tickets/{number.lower()}", headers=people.supervisor).json()
    assert [e["action"] for e in detail["events"]] == [
        "open",
        "dispatch",
        "accept",
        "start",
        "resolve",
        "reopen",
    ]
    assert detail["events"][-1]["note"] == "firm disagrees"
    assert "dispatch" in detail["actions"] and "accept" not in detail["actions"]
    assert client.get("/api/tickets/CQ2612020999-A", headers=people.agent).status_code == 404


def test_every_action_the_ui_offers_is_an_api_action() -> None:
    assert set(get_args(Action)) == set(lifecycle.PUBLIC_ACTIONS)


def test_claim_note_reclassify_sms_and_release_through_the_api(
    client: TestClient, session: Session, people: People
) -> None:
    ticket = open_request(session, now=utcnow())
    session.commit()
    number = ticket.number

    claimed = _post(client, people.agent, number, "claim", version=1)
    assert claimed.status_code == 200 and claimed.json()["assignee"] == "user:li"
    assert "release" in claimed.json()["actions"]
    noted = _post(client, people.agent, number, "note", version=2, note="<b>called back</b>")
    assert noted.status_code == 200 and noted.json()["events"][-1]["note"] == "<b>called back</b>"
    missing = _post(client, people.agent, number, "reclassify", version=3, reason="legal need")
    assert "no service category" in problem(missing, "body")["msg"]
    moved = _post(
        client, people.agent, number, "reclassify", version=3, category="legal", reason="a contract"
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["category"] == "legal"
    sent = _post(client, people.agent, number, "sms", version=4, note="请带营业执照")
    assert sent.status_code == 200 and sent.json()["events"][-1]["action"] == "sms"
    # Another agent may not give up li's claim; li may.
    assert _post(client, people.other_agent, number, "release", version=5).status_code == 403
    released = _post(client, people.agent, number, "release", version=5)
    assert released.status_code == 200 and released.json()["assignee"] is None
    assert [e["action"] for e in released.json()["events"]][1:] == [
        "claim",
        "note",
        "reclassify",
        "sms",
        "release",
    ]


def test_decline_cancel_and_escalate_need_what_they_need(
    client: TestClient, session: Session, people: People
) -> None:
    original = open_request(session)
    copy = open_request(session, phone="+8613900139000")
    session.commit()
    assert (
        _post(
            client, people.agent, copy.number, "dispatch", institution_id=people.bank.id
        ).status_code
        == 200
    )
    no_reason = _post(client, people.bank_staff, copy.number, "decline")
    assert "reason" in problem(no_reason, "body")["msg"]
    declined = _post(client, people.bank_staff, copy.number, "decline", note="not in our district")
    assert declined.status_code == 200
    assert declined.json()["state"] == "dispatched"  # re-routed to the next best
    assert declined.json()["institution_id"] != people.bank.id
    no_original = _post(client, people.agent, copy.number, "cancel", reason="duplicate")
    assert "duplicate" in problem(no_original, "body")["msg"]
    cancelled = _post(
        client,
        people.agent,
        copy.number,
        "cancel",
        reason="duplicate",
        duplicate_of=original.number,
    )
    assert cancelled.status_code == 200
    assert (cancelled.json()["state"], cancelled.json()["duplicate_of"]) == (
        "cancelled",
        original.number,
    )
    escalated = _post(client, people.agent, original.number, "escalate", reason="firm angry")
    assert escalated.status_code == 200 and escalated.json()["escalation_level"] == 1
    assert _post(client, people.agent, original.number, "fly").status_code == 422


def test_visibility_by_role_and_keyset_pages(
    client: TestClient, session: Session, people: People
) -> None:
    numbers = []
    for index in range(5):
        ticket = open_request(
            session, phone=f"+861380013800{index}", now=local(2026, 12, 2, 9 + index)
        )
        numbers.append(ticket.number)
    served = open_request(session, phone="+8613700137000")
    service.dispatch(
        session, served, actor=Actor("user:li", "agent"), institution_id=people.bank.id
    )
    served.assignee = "user:li"
    session.add(served)
    complaint = open_request(session, kind=TicketKind.complaint, related=served, category=None)
    session.commit()

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/tickets", params=params, headers=people.supervisor).json()
        seen += [item["number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert seen[0] == complaint.number  # newest first

    by_phone = client.get("/api/tickets", params={"phone": "138 0013 8002"}, headers=people.agent)
    assert [i["number"] for i in by_phone.json()["items"]] == [numbers[2]]
    assert by_phone.json()["items"][0]["caller_phone"] == "138****8002"
    states = client.get("/api/tickets", params={"state": "dispatched"}, headers=people.agent).json()
    assert [i["number"] for i in states["items"]] == [served.number]
    assert (
        client.get("/api/tickets", params={"state": "lost"}, headers=people.agent).status_code
        == 422
    )
    bad_cursor = client.get("/api/tickets", params={"cursor": "@@"}, headers=people.agent)
    assert problem(bad_cursor, "query", "cursor")["input"] == "@@"
    no_phone = client.get("/api/tickets", params={"phone": "call me"}, headers=people.agent)
    assert "call me" in problem(no_phone, "query", "phone")["msg"]

    # The institution sees its own service ticket only, never the complaint about it.
    mine = client.get("/api/tickets", headers=people.bank_staff).json()["items"]
    assert [i["number"] for i in mine] == [served.number]
    assert (
        client.get(f"/api/tickets/{complaint.number}", headers=people.bank_staff).status_code == 403
    )
    # The agent who handled the case does not see the complaint about it; another agent does.
    li = [i["number"] for i in client.get("/api/tickets", headers=people.agent).json()["items"]]
    wang = [
        i["number"] for i in client.get("/api/tickets", headers=people.other_agent).json()["items"]
    ]
    assert complaint.number not in li and complaint.number in wang
    assert client.get(f"/api/tickets/{complaint.number}", headers=people.agent).status_code == 403
    # Complaints are decided by supervisors.
    assert _post(client, people.other_agent, complaint.number, "uphold").status_code == 403
    upheld = _post(client, people.supervisor, complaint.number, "uphold", note="confirmed")
    assert upheld.status_code == 200 and upheld.json()["closure"] == "complaint_upheld"
    assert client.get(f"/api/tickets/{served.number}", headers=people.bank_staff).json()[
        "state"
    ] == ("escalated")


def test_metrics_endpoint(client: TestClient, session: Session, people: People) -> None:
    ticket = open_request(session, now=local(2026, 12, 2, 10))
    service.dispatch(
        session,
        ticket,
        actor=Actor("user:li", "agent"),
        institution_id=people.bank.id,
        now=local(2026, 12, 2, 10),
    )
    session.commit()
    params = {"by": "institution", "since": "2026-12-01T00:00:00", "until": "2027-01-01T00:00:00"}
    answer = client.get("/api/metrics", params=params, headers=people.supervisor)
    assert answer.status_code == 200, answer.text
    (group,) = answer.json()["groups"]
    assert group["key"] == people.bank.id and group["volume"] == 1
    assert group["on_time_acceptance_rate"] == 0.0  # not accepted, and the due time passed
    assert group["revisit_rate"] is None
    by_district = client.get(
        "/api/metrics", params={**params, "by": "district"}, headers=people.agent
    )
    assert by_district.json()["groups"][0]["key"] == "yubei"
    assert client.get("/api/metrics", params=params, headers=people.bank_staff).status_code == 403
    assert (
        client.get(
            "/api/metrics", params={**params, "by": "colour"}, headers=people.agent
        ).status_code
        == 422
    )
    backwards = {**params, "since": "2027-01-01T00:00:00", "until": "2026-12-01T00:00:00"}
    reversed_period = client.get("/api/metrics", params=backwards, headers=people.agent)
    assert "since" in problem(reversed_period, "query", "since")["msg"]


# Who may do what (issue 7): staff work the queue, the institution side works its own cases,
# oversight reopens and decides complaints; an institution never sees another's case nor any
# complaint, an agent never a complaint about their own case.
ROLES = ("agent", "other_agent", "supervisor", "admin", "bank_staff", "other_staff")
STAFF_SIDE = {"agent", "other_agent", "supervisor", "admin"}
INSTITUTION_SIDE = {"supervisor", "admin", "bank_staff"}
OVERSIGHT = {"supervisor", "admin"}
SERVICE_MATRIX = {
    "claim": STAFF_SIDE,
    "dispatch": STAFF_SIDE,
    "accept": INSTITUTION_SIDE,
    "decline": INSTITUTION_SIDE,
    "start": INSTITUTION_SIDE,
    "resolve": INSTITUTION_SIDE,
    "reopen": OVERSIGHT,
    "cancel": STAFF_SIDE,
    "escalate": STAFF_SIDE,
}
COMPLAINT_MATRIX = dict.fromkeys(("claim", "uphold", "dismiss", "cancel"), OVERSIGHT)


@pytest.mark.parametrize("kind", ["service", "complaint"])
def test_every_role_and_action_is_allowed_or_forbidden_on_the_server(
    client: TestClient, session: Session, people: People, kind: str
) -> None:
    """Each role tries each action with a stale version: a permitted one gets past the rule and
    stops at the version (409, nothing changed), a forbidden one is refused (403)."""
    served = open_request(session)
    service.dispatch(
        session, served, actor=Actor("user:li", "agent"), institution_id=people.bank.id
    )
    served.assignee = "user:li"  # the agent li handled it: the complaint is about li's case
    session.add(served)
    target = served
    matrix = SERVICE_MATRIX
    if kind == "complaint":
        target = open_request(session, kind=TicketKind.complaint, related=served, category=None)
        matrix = COMPLAINT_MATRIX
    session.commit()
    before = client.get(f"/api/tickets/{target.number}", headers=people.supervisor).json()
    body = {"version": 999, "institution_id": people.other_bank.id, "reason": "spam", "note": "n"}
    answers: dict[tuple[str, str], int] = {}
    for action in matrix:
        for role in ROLES:
            response = _post(client, getattr(people, role), target.number, action, **body)
            answers[(action, role)] = response.status_code
            if response.status_code == 409:
                assert "version 999" in response.json()["error"], (action, role, response.text)
                assert response.json()["version"] == before["version"]
            elif response.status_code == 403:
                assert response.json()["error"], (action, role)
    expected = {
        (action, role): 409 if role in allowed else 403
        for action, allowed in matrix.items()
        for role in ROLES
    }
    assert answers == expected
    after = client.get(f"/api/tickets/{target.number}", headers=people.supervisor).json()
    assert (after["state"], after["version"]) == (before["state"], before["version"])
