"""Call status callbacks (no call is lost), duplicate deliveries, signatures, proxies, failures."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from anyio import to_thread
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

import routing
from hotline.app import create_app
from hotline.settings import Settings
from ivr_flows import calls
from ivr_flows.models import CallLog, DialogueState, MessageLog, WebhookDelivery
from kb.db import get_engine
from tests.conftest import TwilioSigner, statements_sent
from tests.hotline.test_voice_main import at, events, sms_jobs, tickets
from tests.ivr_flows.phone import OFFICE_HOURS, PhoneCall, Twiml, new_sid
from tickets.models import TicketState


@pytest.fixture(autouse=True)
def _empty_queues(redis_conn: redis.Redis) -> Iterator[None]:
    redis_conn.flushdb()
    yield


@pytest.fixture
def call(app: FastAPI, client: TestClient, twilio: TwilioSigner, settings: Settings) -> PhoneCall:
    at(app, OFFICE_HOURS)
    return PhoneCall(client, twilio, settings)


def count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def call_log(engine: Engine, sid: str) -> list[str]:
    with Session(engine) as session:
        rows = session.exec(select(CallLog).where(CallLog.call_sid == sid).order_by(CallLog.id))
        return [row.status for row in rows]


# --- abandoned and missed calls ---------------------------------------------------------------


def test_every_status_is_logged(call: PhoneCall, clean_db: Engine) -> None:
    call.status("ringing", sequence="0")
    call.start()
    call.status("in-progress", sequence="1")
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    call.status("completed", sequence="2", CallDuration="75")
    assert call_log(clean_db, call.sid) == ["ringing", "in-progress", "completed"]
    with Session(clean_db) as session:
        last = session.exec(select(CallLog).where(CallLog.status == "completed")).one()
    [ticket] = tickets(clean_db)
    assert last.duration == 75 and last.flow == "main" and last.ticket_id == ticket.id


def test_hanging_up_after_stating_the_need_still_opens_a_routed_ticket(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    call.say("我们在沙坪坝区，想参加中小企业培训")  # then hangs up at the confirmation
    assert tickets(clean_db) == []
    call.status("completed", CallDuration="20")
    [ticket] = tickets(clean_db)
    assert ticket.category == "talent" and ticket.district_code == "shapingba"
    assert ticket.state == TicketState.dispatched
    assert "培训" in ticket.summary
    assert ticket.classification["abandoned_at_step"] == "confirm_category"
    follow = [e for e in events(clean_db, ticket.id or 0) if e.action == "follow_up"]
    assert follow and follow[0].data["reason"] == "caller_hung_up"
    assert sms_jobs(clean_db, redis_conn) == [
        {"ticket_id": ticket.id, "purpose": "voice_confirmation"}
    ]


def test_hanging_up_before_stating_a_need_leaves_a_callback_task(
    call: PhoneCall, clean_db: Engine
) -> None:
    call.start()
    call.status("completed", CallDuration="4")
    [ticket] = tickets(clean_db)
    assert ticket.category is None and ticket.state == TicketState.new
    assert ticket.classification["callback"] is True
    assert ticket.classification["abandoned_at_step"] == "welcome"
    assert ticket.caller_phone == call.caller


@pytest.mark.parametrize("status", ["busy", "no-answer", "canceled", "failed"])
def test_a_missed_call_that_never_reached_the_flow_gets_a_callback(
    call: PhoneCall, clean_db: Engine, status: str
) -> None:
    call.status(status)
    [ticket] = tickets(clean_db)
    assert ticket.classification == {
        "callback": True,
        "call_status": status,
        "abandoned_at_step": None,
    }


def test_a_finished_call_opens_nothing_more(call: PhoneCall, clean_db: Engine) -> None:
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    call.silence()  # goodbye
    call.status("completed")
    call.status("completed", sequence="4")  # a later, different callback of the same end
    assert len(tickets(clean_db)) == 1


def state_writes(action: Callable[[], object]) -> list[str]:
    """The statements that write dialogue_state while ``action`` runs (their first word), on
    the engine the app uses."""
    with statements_sent(get_engine()) as sent:
        action()
    writes = [statement.split() for statement in sent]
    return [
        words[0]
        for words in writes
        if words[0] in {"INSERT", "UPDATE"} and "dialogue_state" in words[:3]
    ]


def test_a_new_calls_state_is_written_once_with_its_final_values(
    call: PhoneCall, clean_db: Engine
) -> None:
    """The callback task's firm and ticket are looked up and written before the state is
    saved: the state still goes out as one INSERT, not an INSERT and an UPDATE (every call
    that ends at the greeting pays for each statement)."""
    call.start()
    assert state_writes(lambda: call.status("completed")) == ["INSERT"]
    [ticket] = tickets(clean_db)
    with Session(clean_db) as session:
        [state] = session.exec(select(DialogueState)).all()
        assert state.finished and state.ticket_id == ticket.id
        assert state.data["ticket_id"] == ticket.id and state.data["step"] == "welcome"
    other = PhoneCall(call.client, call.twilio, call.settings)
    other.start()
    assert state_writes(other.silence) == ["INSERT"]
    with Session(clean_db) as session:
        row = session.get(DialogueState, f"call:{other.sid}")
        assert row is not None and not row.finished and row.data["step"] == "ask_need"


def test_duplicate_status_callbacks_are_stored_once(call: PhoneCall, clean_db: Engine) -> None:
    call.start()
    call.status("completed")
    call.status("completed")
    assert call_log(clean_db, call.sid) == ["completed"]
    assert len(tickets(clean_db)) == 1


# --- duplicate deliveries ---------------------------------------------------------------------


def test_a_repeated_step_returns_the_same_twiml_without_repeating_side_effects(
    call: PhoneCall, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    call.start()
    call.silence()
    confirm = call.say("想申请贷款 渝北")
    first = call.post(confirm.action, Digits="1")
    second = call.post(confirm.action, Digits="1")
    assert first.text == second.text
    assert len(tickets(clean_db)) == 1
    assert len(sms_jobs(clean_db, redis_conn)) == 1


def test_the_idempotency_token_wins_over_the_body(call: PhoneCall, clean_db: Engine) -> None:
    call.start()
    need = call.silence()
    token = {"I-Twilio-Idempotency-Token": "tok-" + call.sid}
    first = call.post(need.action, headers=token, SpeechResult="想申请贷款 渝北")
    # Twilio retried the same request: same token; the reply is the stored one.
    again = call.post(need.action, headers=token, SpeechResult="想申请贷款 渝北")
    assert first.text == again.text
    with Session(clean_db) as session:
        keys = session.exec(select(WebhookDelivery.key)).all()
    assert f"voice:main:token:tok-{call.sid}" in keys


def test_concurrent_deliveries_of_one_step_open_one_ticket(
    call: PhoneCall, clean_db: Engine
) -> None:
    call.start()
    call.silence()
    confirm = call.say("公司要做产品检测 九龙坡")
    results: list[str] = []

    def deliver() -> None:
        results.append(call.post(confirm.action, Digits="1").text)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(tickets(clean_db)) == 1


def test_the_same_step_asked_again_is_not_a_duplicate(call: PhoneCall) -> None:
    """A retry of a step renders a new action URL (its sequence number): the caller's second
    answer is a new delivery, not a repeat of the first."""
    call.start()
    first = call.silence()
    second = call.say("呃")
    assert first.step == second.step == "ask_need"
    assert first.action != second.action


# --- signatures and proxies -------------------------------------------------------------------


def test_forged_and_unsigned_requests_are_refused_and_store_nothing(
    client: TestClient, twilio: TwilioSigner, call: PhoneCall, clean_db: Engine
) -> None:
    params = call.base()
    assert client.post("/twilio/voice", data=params).status_code == 403
    signature = twilio.signature("/twilio/voice", params)
    forged = dict(params, From="+8613911112222")
    response = client.post("/twilio/voice", data=forged, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    wrong_host = twilio.validator.compute_signature("http://testserver/twilio/voice", params)
    response = client.post("/twilio/voice", data=params, headers={"X-Twilio-Signature": wrong_host})
    assert response.status_code == 403
    for path in ("/twilio/monitor", "/twilio/call-status", "/twilio/fallback"):
        assert client.post(path, data=params).status_code == 403
    # A signed step URL whose query was tampered with is refused too.
    signed = twilio.signature("/twilio/voice?step=ask_need&seq=2", params)
    response = client.post(
        "/twilio/voice?step=open_ticket&seq=2", data=params, headers={"X-Twilio-Signature": signed}
    )
    assert response.status_code == 403
    assert count(clean_db, DialogueState) == 0 and tickets(clean_db) == []


def test_behind_a_proxy_the_public_url_is_what_is_checked(call: PhoneCall) -> None:
    proxy = {"X-Forwarded-Host": "10.0.0.5:8000", "X-Forwarded-Proto": "http"}
    twiml = call.post("/twilio/voice", headers=proxy)
    assert twiml.verbs == ["Gather", "Redirect"]
    # The action URLs point at the public base, never at the host the proxy forwarded to.
    assert twiml.action.startswith("https://hotline.example.test/twilio/voice?")


# --- failures ---------------------------------------------------------------------------------


def test_an_internal_failure_apologises_in_twiml_and_registers_a_callback(
    call: PhoneCall, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_text: str) -> None:
        raise RuntimeError("classifier down")

    call.start()
    call.silence()
    monkeypatch.setattr(routing, "classify", broken)
    apology = call.say("想申请贷款")
    assert apology.verbs == ["Say", "Say", "Hangup"]
    assert "回电" in apology.says[0] and "call you back" in apology.says[1]
    [ticket] = tickets(clean_db)
    assert ticket.classification["callback"] is True
    # The call's end does not add a second callback for the same call.
    call.status("completed")
    assert len(tickets(clean_db)) == 1


def test_the_fallback_url_apologises_and_registers_a_callback(
    client: TestClient, twilio: TwilioSigner, call: PhoneCall, clean_db: Engine
) -> None:
    params = dict(call.base(), ErrorCode="11200", ErrorUrl="https://hotline.example.test/x")
    response = twilio.post(client, "/twilio/fallback", params)
    assert response.status_code == 200
    twiml = Twiml(response.text)
    assert twiml.verbs == ["Say", "Say", "Hangup"]
    [ticket] = tickets(clean_db)
    assert ticket.classification["callback"] is True
    # Twilio tries the fallback once per failure; a second failure of the same call is the
    # same callback.
    twilio.post(client, "/twilio/fallback", params)
    assert len(tickets(clean_db)) == 1


def test_the_fallback_url_answers_messages_with_a_message(
    client: TestClient, twilio: TwilioSigner, settings: Settings
) -> None:
    params = {
        "MessageSid": new_sid("SM"),
        "AccountSid": "AC" + "0" * 32,
        "From": "+8613800138000",
        "To": settings.main_number,
        "Body": "贷款",
    }
    response = twilio.post(client, "/twilio/fallback", params)
    assert response.status_code == 200
    assert "<Message>" in response.text


def test_a_request_without_call_sid_is_a_clear_400(
    client: TestClient, twilio: TwilioSigner
) -> None:
    response = twilio.post(client, "/twilio/voice", {"From": "+8613800138000"})
    assert response.status_code == 400 and "CallSid" in response.text


def test_message_status_callbacks_are_stored_once(
    client: TestClient, twilio: TwilioSigner, clean_db: Engine
) -> None:
    sid = new_sid("SM")
    for status in ("queued", "sent", "delivered", "delivered"):
        params = {
            "MessageSid": sid,
            "MessageStatus": status,
            "AccountSid": "AC" + "0" * 32,
            "To": "+8613800138000",
            "From": "+862312345",
        }
        assert twilio.post(client, "/twilio/message-status", params).status_code == 200
    with Session(clean_db) as session:
        statuses = [m.status for m in session.exec(select(MessageLog).order_by(MessageLog.id))]
    assert statuses == ["queued", "sent", "delivered"]


def test_a_greeting_that_fails_is_answered_on_a_thread_with_an_apology_and_a_callback(
    call: PhoneCall, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new call's greeting is answered on the event loop; when it fails there, the request
    goes to a thread, where a failure is answered as on every other step."""
    failures: list[str] = []

    def broken(_params: object) -> None:
        failures.append("failed")
        raise RuntimeError("flow file unreadable")

    monkeypatch.setattr(calls.Input, "from_params", broken)
    apology = call.start()
    assert failures == ["failed", "failed"]  # once on the loop, once on the thread
    assert apology.verbs == ["Say", "Say", "Hangup"]
    [ticket] = tickets(clean_db)
    assert ticket.classification["callback"] is True


def test_a_new_calls_greeting_is_answered_while_every_thread_is_taken(
    settings: Settings, clean_db: Engine, twilio: TwilioSigner
) -> None:
    """A flood of new calls is greeted without the process's threads: with the only one taken
    (by a slow page, say), a greeting is still answered."""
    app = create_app(settings.model_copy(update={"web_threads": 1}))
    holder = object()

    async def take_the_thread() -> None:
        await to_thread.current_default_thread_limiter().acquire_on_behalf_of(holder)

    async def give_it_back() -> None:
        to_thread.current_default_thread_limiter().release_on_behalf_of(holder)

    with TestClient(app) as client:
        assert client.portal is not None
        client.portal.call(take_the_thread)
        answered: list[Twiml] = []
        caller = threading.Thread(
            target=lambda: answered.append(PhoneCall(client, twilio, settings).start())
        )
        try:
            caller.start()
            caller.join(timeout=10)
            assert not caller.is_alive(), "the greeting waited for a thread"
        finally:
            client.portal.call(give_it_back)
            caller.join(timeout=10)
    [greeting] = answered
    assert greeting.verbs[0] == "Gather"
    assert count(clean_db, DialogueState) == 0


def test_an_end_that_fails_on_the_event_loop_is_written_on_a_thread(
    call: PhoneCall, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual end of a call is tried on the event loop (PostgreSQL: the grouped statement);
    when that fails (a connection lost), the general path on a thread writes it, once."""
    if clean_db.dialect.name != "postgresql":
        pytest.skip("the event loop's attempt is PostgreSQL's: SQLite ends calls on a thread")
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    call.silence()  # goodbye: the case is open
    attempts: list[str] = []

    async def lost(*_args: object, **_kwargs: object) -> None:
        attempts.append("lost")
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr(calls, "end_if_served", lost)
    call.status("completed")
    assert attempts == ["lost"]
    assert call_log(clean_db, call.sid)[-1] == "completed"
    with Session(clean_db) as session:
        state = session.get(DialogueState, f"call:{call.sid}")
        assert state is not None and state.finished
    # Delivered again (Twilio retries when it got no answer): stored once.
    call.status("completed")
    assert call_log(clean_db, call.sid).count("completed") == 1
    assert len(tickets(clean_db)) == 1


def test_the_usual_end_of_a_call_takes_the_served_path_on_every_database(
    call: PhoneCall, clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A completed call whose case is open is ended by store.end_served_call (grouped on
    PostgreSQL, in the session on SQLite), which logs it at DEBUG; the general path, which
    would log it at INFO, is for the other ends."""
    call.start()
    call.silence()
    call.say("想申请贷款 渝北")
    call.press("1")
    call.silence()  # goodbye: the case is open
    caplog.set_level(logging.INFO, logger="ivr_flows.calls")
    call.status("completed")
    assert call_log(clean_db, call.sid)[-1] == "completed"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "ended" in r.message]
