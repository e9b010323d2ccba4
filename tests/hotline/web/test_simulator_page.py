"""/simulator: the phone simulator page, route by route, through the real app. Every step the
page takes reaches the webhooks as a signed HTTP request (checked here by recording them)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twilio.request_validator import RequestValidator

from hotline.app import create_app
from hotline.settings import Settings
from hotline.web import routes_simulator, simulator_state
from hotline.wiring import configure_domain
from ivr_flows.models import CallLog
from tests.conftest import answer_texts
from tests.hotline.test_voice_main import at
from tests.hotline.test_voice_revisit import reload, resolved_and_called
from tests.hotline.web.conftest import Browser, Cast, csrf_of, login
from tests.ivr_flows.phone import AFTER_HOURS, OFFICE_HOURS
from tests.live_server import serving
from tickets.models import Channel, OutboundCall, Ticket, TicketEvent, TicketState

CALLER = "+8613800138555"
HTMX = {"HX-Request": "true"}


def _tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket)).all())


def _post(client: TestClient, path: str, data: dict[str, str], *, htmx: bool = True):  # type: ignore[no-untyped-def]
    csrf = csrf_of(client.get("/simulator").text)
    headers = {**HTMX, "X-CSRF-Token": csrf} if htmx else {}
    form = data if htmx else {**data, "csrf_token": csrf}
    return client.post(path, data=form, headers=headers, follow_redirects=False)


def _step(client: TestClient, action: str, value: str = "", *, htmx: bool = True):  # type: ignore[no-untyped-def]
    return _post(client, "/simulator/call", {"action": action, "value": value}, htmx=htmx)


def _start(client: TestClient, line: str = "hotline", caller: str = CALLER, lang: str = "zh"):  # type: ignore[no-untyped-def]
    return _post(
        client, "/simulator/call/start", {"line": line, "caller": caller, "language": lang}
    )


class Wiretap:
    """Records every /twilio/* request that reaches the app (outermost, before anything)."""

    def __init__(self, app: ASGIApp, requests: list[tuple[str, dict[str, str], str]]) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/twilio/"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        path = scope["path"] + (
            f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        )
        self.requests.append(
            (path, dict(parse_qsl(body.decode())), headers.get("x-twilio-signature", ""))
        )
        body = self.tamper(path, body)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def tamper(self, path: str, body: bytes) -> bytes:
        return body


class Tamper(Wiretap):
    """A man in the middle: changes the caller's number on the way to the webhook."""

    def tamper(self, path: str, body: bytes) -> bytes:
        return body.replace(b"%2B8613800138555", b"%2B8613800138666")


@pytest.fixture
def wiretap(app: FastAPI) -> list[tuple[str, dict[str, str], str]]:
    seen: list[tuple[str, dict[str, str], str]] = []
    app.add_middleware(Wiretap, requests=seen)
    return seen


def test_roles(browser: Browser, anonymous: TestClient, cast: Cast) -> None:
    answer = anonymous.get("/simulator", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    for username in ("li", "root"):
        page = browser(username).get("/simulator")
        assert page.status_code == 200 and 'id="sim-start"' in page.text
        assert 'href="/simulator"' in page.text  # the nav link
    english = browser("li").get("/simulator?lang=en").text
    assert "Phone simulator" in english and "Outbound calls ringing" in english
    for username in ("zhao", "bank"):
        client = browser(username)
        assert client.get("/simulator").status_code == 403
        assert client.get("/simulator/outbound").status_code == 403
        csrf = csrf_of(client.get("/queue" if username == "zhao" else "/portal").text)
        refused = client.post(
            "/simulator/call/start",
            data={"line": "hotline", "caller": CALLER, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert 'href="/simulator"' not in client.get("/").text


def test_every_post_needs_the_csrf_token(
    app: FastAPI, browser: Browser, cast: Cast, clean_db: Engine, wiretap: list[object]
) -> None:
    li = browser("li")
    for path, data in (
        ("/simulator/call/start", {"line": "hotline", "caller": CALLER}),
        ("/simulator/call", {"action": "hangup"}),
        ("/simulator/sms", {"sender": CALLER, "body": "想申请贷款 渝北"}),
        ("/simulator/outbound/1", {"answer": "human"}),
        ("/simulator/clear", {}),
    ):
        assert li.post(path, data=data, follow_redirects=False).status_code == 403
        forged = li.post(
            path, data=data, headers={"X-CSRF-Token": "forged"}, follow_redirects=False
        )
        assert forged.status_code == 403
    assert wiretap == [] and _tickets(clean_db) == []


def test_a_call_through_the_page_opens_a_ticket(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    settings: Settings,
    wiretap: list[tuple[str, dict[str, str], str]],
) -> None:
    at(app, OFFICE_HOURS)
    li = browser("li")
    page = _start(li)
    assert page.status_code == 200 and 'id="sim"' in page.text and "<html" not in page.text
    assert "热线" in page.text and 'id="sim-keypad"' in page.text
    page = _step(li, "silence")
    assert 'id="sim-speech"' in page.text
    page = _step(li, "say", "我们公司在渝北区，想申请一笔贷款")
    assert "投融资服务" in page.text
    # Without JavaScript: a plain form post, answered with a redirect back to the page.
    moved = _step(li, "press", "1", htmx=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/simulator"
    [ticket] = _tickets(clean_db)
    assert ticket.channel == Channel.voice and ticket.caller_phone == CALLER
    assert ticket.category == "financing" and ticket.district_code == "yubei"
    page = li.get("/simulator")
    assert f'href="/tickets/{ticket.number}"' in page.text
    assert " ".join(ticket.number[2:8]) in page.text  # read digit by digit
    page = _step(li, "press", "1")
    assert 'id="sim-dial-no-answer"' in page.text
    page = _step(li, "dial", "no-answer")
    assert 'id="sim-queue-leave"' in page.text
    page = _step(li, "queue", "leave")
    assert 'id="sim-recording"' in page.text
    page = _step(li, "record", "我想尽快办理贷款，请回电")
    assert 'id="sim-controls"' not in page.text and "通话结束" in page.text
    # Every step went to the webhooks over HTTP, signed for the public URL as Twilio signs.
    validator = RequestValidator(settings.auth_token)
    paths = [path.split("?")[0] for path, _, _ in wiretap]
    assert paths[0] == "/twilio/voice"
    assert paths[-2:] == ["/twilio/call-status", "/twilio/recording-status"]
    for path, params, signature in wiretap:
        assert validator.validate(settings.public_base_url + path, params, signature), path
    with Session(clean_db) as session:
        assert session.exec(select(CallLog.status)).all() == ["completed"]


def test_english_and_hanging_up_is_not_lost(
    app: FastAPI, browser: Browser, cast: Cast, clean_db: Engine
) -> None:
    at(app, AFTER_HOURS)
    li = browser("li")
    page = _start(li, lang="en")
    assert "tell us" in page.text and 'lang="en"' in page.text
    page = _step(li, "hangup")
    assert "You hung up" not in page.text  # the page speaks Chinese unless asked
    assert "您已挂机" in page.text
    [ticket] = _tickets(clean_db)
    assert ticket.classification["callback"] is True


def test_the_page_refuses_what_the_call_does_not_wait_for(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    wiretap: list[tuple[str, dict[str, str], str]],
) -> None:
    at(app, OFFICE_HOURS)
    li = browser("li")
    bad = _start(li, caller="not a phone")
    assert bad.status_code == 422 and "不是有效的电话号码" in bad.text
    assert _step(li, "press", "1").status_code == 409  # no call yet
    _start(li)
    sent = len(wiretap)
    assert _step(li, "say", "hello").status_code == 409  # keys only at the greeting
    assert _step(li, "press", "12a").status_code == 422
    assert _step(li, "dance").status_code == 422
    answer = _step(li, "press", "x", htmx=False)  # without JavaScript: the whole page
    assert (
        answer.status_code == 422 and "<html" in answer.text and 'id="sim-problem"' in answer.text
    )
    assert len(wiretap) == sent  # nothing was sent to the hotline


def test_a_tampered_request_is_refused_by_the_webhook(
    app: FastAPI, browser: Browser, cast: Cast, clean_db: Engine
) -> None:
    at(app, OFFICE_HOURS)
    app.add_middleware(Tamper, requests=[])
    li = browser("li")
    page = _start(li)
    assert page.status_code == 502 and "403" in page.text
    assert 'id="sim-problem"' in page.text
    assert _tickets(clean_db) == []


def test_an_sms_opens_a_ticket(
    app: FastAPI, browser: Browser, cast: Cast, clean_db: Engine, sms_worker: None
) -> None:
    li = browser("li")
    page = _post(li, "/simulator/sms", {"sender": CALLER, "body": "想找律师 合同纠纷 江北区"})
    assert page.status_code == 200
    [ticket] = _tickets(clean_db)
    assert ticket.channel == Channel.sms and ticket.category == "legal"
    assert f'href="/tickets/{ticket.number}"' in page.text
    bad = _post(li, "/simulator/sms", {"sender": CALLER, "body": "  "})
    assert bad.status_code == 422


def test_a_text_no_worker_answers_shows_as_not_answered_yet(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(routes_simulator, "SMS_REPLY_WAIT_SECONDS", 0.3)
    page = _post(browser("li"), "/simulator/sms", {"sender": CALLER, "body": "想申请贷款 渝北区"})
    assert page.status_code == 200
    assert "worker" in page.text and "短信由后台任务处理" in page.text
    # Taken, not lost: the case is opened when a worker gets to it.
    assert _tickets(clean_db) == []
    assert answer_texts(clean_db) == ["answered"]
    [ticket] = _tickets(clean_db)
    assert ticket.channel == Channel.sms


def test_answering_a_revisit_call_records_the_outcome(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    redis_conn: redis.Redis,
    wiretap: list[tuple[str, dict[str, str], str]],
) -> None:
    at(app, OFFICE_HOURS)
    ticket, _ = resolved_and_called(clean_db)
    with Session(clean_db) as session:
        placed = session.exec(select(OutboundCall)).one()
    li = browser("li")
    listed = li.get("/simulator/outbound").text
    assert f'id="sim-outbound-{placed.id}"' in listed and ticket.number in listed
    assert ticket.caller_phone not in listed  # masked
    other = browser("wang")
    page = _post(li, f"/simulator/outbound/{placed.id}", {"answer": "human"})
    assert "回访" in page.text and 'id="sim-keypad"' in page.text
    # Another browser sees it ringing no more, and may not pick it up.
    assert f"sim-outbound-{placed.id}" not in other.get("/simulator").text
    taken = _post(other, f"/simulator/outbound/{placed.id}", {"answer": "human"})
    assert taken.status_code == 409
    _step(li, "press", "1")
    _step(li, "press", "4")
    page = _step(li, "record", "服务很好")
    assert "感谢" in page.text
    fresh, _ = reload(clean_db, ticket)
    assert fresh.state == TicketState.closed
    assert fresh.revisit_outcome == "met" and fresh.satisfaction == 4
    assert f"sim-outbound-{placed.id}" not in li.get("/simulator/outbound").text
    assert wiretap[0][0] == f"/twilio/revisit?ticket={ticket.number}"
    assert wiretap[0][1]["Direction"] == "outbound-api"
    assert wiretap[0][1]["To"] == ticket.caller_phone
    again = _post(li, f"/simulator/outbound/{placed.id}", {"answer": "human"})
    assert again.status_code == 409


@pytest.mark.parametrize("answer", ["no-answer", "machine"])
def test_an_unanswered_revisit_call(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    answer: str,
    wiretap: list[tuple[str, dict[str, str], str]],
) -> None:
    at(app, OFFICE_HOURS)
    ticket, _ = resolved_and_called(clean_db)
    with Session(clean_db) as session:
        placed = session.exec(select(OutboundCall)).one()
    li = browser("li")
    page = _post(li, f"/simulator/outbound/{placed.id}", {"answer": answer})
    assert page.status_code == 200 and 'id="sim-controls"' not in page.text
    fresh, row = reload(clean_db, ticket)
    assert row.unanswered == 1 and fresh.state == TicketState.revisit_pending
    with Session(clean_db) as session:
        events = session.exec(
            select(TicketEvent.action).where(TicketEvent.ticket_id == ticket.id)
        ).all()
    assert "revisit_no_answer" in events
    statuses = [params["CallStatus"] for path, params, _ in wiretap if "call-status" in path]
    assert statuses == (["no-answer"] if answer == "no-answer" else ["completed"])
    assert all(f"ticket={ticket.number}" in path for path, _, _ in wiretap)


def test_each_browser_has_its_own_simulator(
    app: FastAPI, browser: Browser, cast: Cast, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    at(app, OFFICE_HOURS)
    li, wang = browser("li"), browser("wang")
    _start(li)
    assert 'id="sim-controls"' in li.get("/simulator").text
    assert 'id="sim-controls"' not in wang.get("/simulator").text
    [key] = list(redis_conn.scan_iter("hotline:simulator:[0-9a-f]*[0-9a-f]"))
    assert 0 < int(redis_conn.ttl(key)) <= simulator_state.STATE_TTL
    cleared = _post(li, "/simulator/clear", {})
    assert 'id="sim-controls"' not in cleared.text and "sim-transcript" in cleared.text


def test_with_real_twilio_the_simulator_stays_offline(
    settings: Settings, clean_db: Engine, cast: Cast
) -> None:
    live = settings.model_copy(update={"twilio_account_sid": "AC" + "1" * 32})
    app = create_app(live)
    try:
        with TestClient(app, base_url="https://testserver") as client:
            assert login(client, "li").status_code == 303
            page = client.get("/simulator")
            assert page.status_code == 200 and "只在离线模式下使用" in page.text
            refused = _post(client, "/simulator/call/start", {"line": "hotline", "caller": CALLER})
            assert refused.status_code == 409
    finally:
        configure_domain(settings)
    assert _tickets(clean_db) == []


def test_two_steps_of_one_browser_at_once_do_not_overwrite_each_other(
    app: FastAPI,
    browser: Browser,
    cast: Cast,
    clean_db: Engine,
    redis_conn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    wiretap: list[tuple[str, dict[str, str], str]],
) -> None:
    at(app, OFFICE_HOURS)
    li = browser("li")
    _start(li)
    [key] = list(redis_conn.scan_iter("hotline:simulator:[0-9a-f]*[0-9a-f]"))
    redis_conn.set(key.decode() + ":lock", "another request", ex=30)  # a step still running
    monkeypatch.setattr(simulator_state, "LOCK_WAIT_SECONDS", 0.2)
    sent = len(wiretap)
    busy = _step(li, "press", "1")
    assert busy.status_code == 409 and "上一步仍在处理中" in busy.text
    assert len(wiretap) == sent


def test_the_page_works_with_a_single_web_thread(
    settings: Settings, cast: Cast, clean_db: Engine, sms_worker: None
) -> None:
    """The page's handler holds the process's only worker thread while its requests reach the
    webhooks, whose handlers need threads too: they must not wait for the page's. Served by
    uvicorn, so that a deadlock fails on the client's timeout instead of hanging the suite."""
    single = {"web_threads": 1}
    try:
        with (
            serving(
                lambda base: create_app(
                    settings.model_copy(update={**single, "public_base_url": base})
                )
            ) as base,
            httpx.Client(base_url=base, timeout=30) as li,
        ):
            assert login(li, "li").status_code == 303
            csrf = csrf_of(li.get("/simulator").text)
            page = li.post(
                "/simulator/sms",
                data={"sender": CALLER, "body": "想找律师 合同纠纷 江北区"},
                headers={**HTMX, "X-CSRF-Token": csrf},
            )
    finally:
        configure_domain(settings)  # the served app configured the domain for its own URL
    assert page.status_code == 200
    [ticket] = _tickets(clean_db)
    assert f'href="/tickets/{ticket.number}"' in page.text
