"""The phone simulator: its engine against the in-process app, and the `hotline call` and
`hotline sms` commands against a real uvicorn server on a loopback port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from hotline.cli import app as cli
from hotline.settings import Settings
from hotline.simulator import (
    CallSimulator,
    ScriptError,
    Signer,
    SimulatorError,
    SmsSimulator,
    await_reply,
    parse_script,
)
from ivr_flows.sms import reply_to
from tests.conftest import answer_texts
from tests.hotline.test_voice_main import at
from tests.ivr_flows.phone import AFTER_HOURS, OFFICE_HOURS
from tickets.models import Channel, Ticket

CALLER = "+8613800138000"


def _tickets(engine: Engine) -> list[Ticket]:
    with Session(engine) as session:
        return list(session.exec(select(Ticket)).all())


@pytest.fixture
def signer(client: TestClient, settings: Settings) -> Signer:
    # The TestClient is an httpx client: requests are signed for the public URL and sent to it.
    return Signer(
        settings.auth_token,
        public_base=settings.public_base_url,
        send_base="http://testserver",
        client=client,
    )


def test_engine_follows_a_call_to_a_ticket(
    app: FastAPI, signer: Signer, settings: Settings, clean_db: Engine
) -> None:
    at(app, OFFICE_HOURS)
    call = CallSimulator(signer, caller=CALLER, to=settings.main_number)
    turn = call.start()
    assert "热线" in turn.text and turn.waiting is not None and turn.waiting.takes_keys
    turn = call.silence()  # the Redirect after the Gather
    assert turn.waiting is not None and turn.waiting.takes_speech
    turn = call.say("我们公司在渝北区，想申请一笔贷款")
    assert "投融资服务" in turn.text
    turn = call.press("1")
    [ticket] = _tickets(clean_db)
    assert " ".join(ticket.number[2:8]) in turn.text
    turn = call.press("1")
    assert turn.waiting is not None and turn.waiting.input == "dial"
    turn = call.dial("no-answer")
    assert turn.waiting is not None and turn.waiting.input == "queue"
    turn = call.queue("leave")
    assert turn.waiting is not None and turn.waiting.input == "record"
    turn = call.record("我想尽快办理贷款，请回电")
    assert turn.ended and "recording status callback sent" in turn.notes
    with pytest.raises(SimulatorError):
        call.press("1")
    assert turn.to_dict()["ended"] is True  # plain data, for a web page


def test_english_start_presses_the_offered_key(
    app: FastAPI, signer: Signer, settings: Settings
) -> None:
    at(app, OFFICE_HOURS)
    call = CallSimulator(signer, caller=CALLER, to=settings.main_number)
    turn = call.start(language="en")
    assert "pressed 9 for English" in turn.notes
    assert any(s.language == "en-US" and "tell us" in s.text for s in turn.said)


def test_engine_hangs_up_and_the_call_is_not_lost(
    app: FastAPI, signer: Signer, settings: Settings, clean_db: Engine
) -> None:
    at(app, AFTER_HOURS)
    call = CallSimulator(signer, caller=CALLER, to=settings.main_number)
    call.start()
    turn = call.hangup()
    assert turn.ended
    [ticket] = _tickets(clean_db)
    assert ticket.classification["callback"] is True


def test_keys_where_speech_is_expected_are_refused_by_the_engine(
    signer: Signer, settings: Settings
) -> None:
    call = CallSimulator(signer, caller=CALLER, to=settings.main_number)
    call.start()
    with pytest.raises(SimulatorError, match="not waiting for speech"):
        call.say("hello")


def test_a_wrong_token_is_refused_by_the_app(client: TestClient, settings: Settings) -> None:
    forged = Signer(
        "not-the-token",
        public_base=settings.public_base_url,
        send_base="http://testserver",
        client=client,
    )
    with pytest.raises(SimulatorError, match="403"):
        CallSimulator(forged, caller=CALLER, to=settings.main_number).start()


def test_sms_engine(signer: Signer, settings: Settings, clean_db: Engine) -> None:
    sent = SmsSimulator(signer, sender=CALLER, to=settings.main_number).send("法律咨询 渝中")
    # The webhook only takes the text: nothing said at once, no case until a worker answers.
    assert sent.immediate == [] and _tickets(clean_db) == []

    def read_reply(sid: str) -> str | None:
        with Session(clean_db) as session:
            return reply_to(session, sid)

    assert await_reply(read_reply, sent.message_sid, timeout=0.2) is None
    assert answer_texts(clean_db) == ["answered"]
    reply = await_reply(read_reply, sent.message_sid, timeout=5)
    [ticket] = _tickets(clean_db)
    assert reply is not None and ticket.number in reply


def test_script_parsing() -> None:
    lines = parse_script("# comment\nsay 想申请贷款\npress: 1\n\nexpect 工单号\nhangup\n")
    assert [(line.verb, line.argument) for line in lines] == [
        ("say", "想申请贷款"),
        ("press", "1"),
        ("expect", "工单号"),
        ("hangup", ""),
    ]
    with pytest.raises(ScriptError, match="line 2: unknown action 'dance'"):
        parse_script("say hi\ndance\n")


# --- against a real server ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(settings: Settings, engine: Engine) -> Iterator[str]:
    """The app under uvicorn on a loopback port. Its public URL stays the configured one (as
    behind a proxy): the simulator signs for that and sends to the loopback address."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(
        HOTLINE_DATABASE_URL=settings.database_url,
        HOTLINE_REDIS_URL=settings.redis_url or "",
        HOTLINE_VAR_DIR=str(settings.var_dir),
        HOTLINE_TWILIO_AUTH_TOKEN=settings.auth_token,
        HOTLINE_PUBLIC_BASE_URL=settings.public_base_url,
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "hotline.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("uvicorn did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "HOTLINE_DATABASE_URL": settings.database_url,
        "HOTLINE_REDIS_URL": settings.redis_url or "",
        "HOTLINE_VAR_DIR": str(settings.var_dir),
        "HOTLINE_TWILIO_AUTH_TOKEN": settings.auth_token,
        "HOTLINE_PUBLIC_BASE_URL": settings.public_base_url,
    }.items():
        monkeypatch.setenv(key, value)


def test_scripted_call_opens_a_ticket(
    server: str, cli_env: None, clean_db: Engine, tmp_path: Path
) -> None:
    script = tmp_path / "loan.call"
    script.write_text(
        "# a firm in Yubei needs a loan\n"
        "silence\n"
        "say 我们公司在渝北区，想申请一笔贷款扩大生产\n"
        "expect 投融资服务\n"
        "press 1\n"
        "expect 工单号\n"
        "hangup\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli, ["call", "--from", "+8613800138123", "--script", str(script), "--url", server]
    )
    assert result.exit_code == 0, result.output
    [ticket] = _tickets(clean_db)
    assert ticket.channel == Channel.voice and ticket.category == "financing"
    assert ticket.caller_phone == "+8613800138123"
    assert "CALLER: [say 我们公司在渝北区" in result.output
    assert "HOTLINE: 已为您登记，工单号是" in result.output
    assert "call ended" in result.output or "caller hung up" in result.output


def test_a_failed_expectation_fails_the_script(
    server: str, cli_env: None, clean_db: Engine, tmp_path: Path
) -> None:
    script = tmp_path / "wrong.call"
    script.write_text("expect something the hotline never says\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["call", "--script", str(script), "--url", server])
    assert result.exit_code == 1
    assert "line 1: expected" in result.output


def test_hotline_sms_opens_a_ticket(
    server: str, cli_env: None, clean_db: Engine, sms_worker: None
) -> None:
    result = CliRunner().invoke(
        cli, ["sms", "--from", "+8613800138124", "想找律师 合同纠纷 江北区", "--url", server]
    )
    assert result.exit_code == 0, result.output
    [ticket] = _tickets(clean_db)
    assert ticket.channel == Channel.sms and ticket.category == "legal"
    assert "HOTLINE: " in result.output and ticket.number in result.output


def test_hotline_sms_without_a_worker_says_so_and_the_text_waits(
    server: str, cli_env: None, clean_db: Engine
) -> None:
    result = CliRunner().invoke(
        cli,
        ["sms", "--from", "+8613800138125", "想找律师 合同纠纷 江北区", "--url", server]
        + ["--wait", "0.5"],
    )
    assert result.exit_code == 1
    assert "is a worker running" in result.output and "HOTLINE:" not in result.output
    # Taken, not lost: a worker that starts later answers it.
    assert _tickets(clean_db) == []
    assert answer_texts(clean_db) == ["answered"]
    [ticket] = _tickets(clean_db)
    assert ticket.caller_phone == "+8613800138125"


def test_interactive_call_reads_keys_and_typed_speech(
    server: str, cli_env: None, clean_db: Engine
) -> None:
    typed = "\n".join(["", "我们在江北区，想找律师看合同", "1", "/hangup"]) + "\n"
    result = CliRunner().invoke(cli, ["call", "--url", server], input=typed)
    assert result.exit_code == 0, result.output
    assert "Type keys" in result.output
    [ticket] = _tickets(clean_db)
    assert ticket.category == "legal" and ticket.district_code == "jiangbei"
    assert ticket.number[:8] in result.output.replace(" ", "").replace("，", "")


def test_answering_a_revisit_call_placed_by_the_tickets_service(
    app: FastAPI, signer: Signer, settings: Settings, clean_db: Engine
) -> None:
    from tests.hotline.test_voice_revisit import reload, resolved_and_called

    at(app, OFFICE_HOURS)
    ticket, url = resolved_and_called(clean_db)
    call = CallSimulator(
        signer,
        caller=ticket.caller_phone,
        to=settings.main_number,
        path=url,
        direction="outbound-api",
    )
    turn = call.start()
    assert "回访" in turn.text
    call.press("1")
    call.press("4")
    turn = call.record("服务很好")
    assert turn.ended
    fresh, _ = reload(clean_db, ticket)
    assert fresh.revisit_outcome == "met" and fresh.satisfaction == 4


def test_end_of_input_hangs_up_and_the_call_is_not_lost(
    server: str, cli_env: None, clean_db: Engine
) -> None:
    result = CliRunner().invoke(cli, ["call", "--url", server], input="\n")
    assert result.exit_code == 0, result.output
    assert "caller hung up" in result.output
    [ticket] = _tickets(clean_db)
    assert ticket.classification["callback"] is True


def test_a_snapshot_resumes_the_call_elsewhere(
    app: FastAPI, signer: Signer, settings: Settings, clean_db: Engine
) -> None:
    """What the web page does between requests: keep the call as JSON, resume it later."""
    at(app, OFFICE_HOURS)
    call = CallSimulator(signer, caller=CALLER, to=settings.main_number)
    call.start()
    kept = json.loads(json.dumps(call.snapshot()))
    resumed = CallSimulator.restore(signer, kept)
    assert resumed.waiting == call.waiting and resumed.call_sid == call.call_sid
    resumed.silence()
    turn = resumed.say("我们公司在渝北区，想申请一笔贷款")
    assert "投融资服务" in turn.text
    again = CallSimulator.restore(signer, json.loads(json.dumps(resumed.snapshot())))
    turn = again.hangup()
    assert [m.code for m in turn.marks] == ["hung_up"] and turn.notes == ["caller hung up"]
    with pytest.raises(SimulatorError, match="ended"):
        CallSimulator.restore(signer, again.snapshot()).press("1")


def test_an_outbound_call_nobody_answers(
    app: FastAPI, signer: Signer, settings: Settings, clean_db: Engine
) -> None:
    from tests.hotline.test_voice_revisit import reload, resolved_and_called

    at(app, OFFICE_HOURS)
    ticket, url = resolved_and_called(clean_db)
    query = url.partition("?")[2]

    def ringing() -> CallSimulator:
        return CallSimulator(
            signer,
            caller=ticket.caller_phone,
            to=settings.main_number,
            path=url,
            status_path=f"/twilio/call-status?{query}",
            direction="outbound-api",
        )

    with pytest.raises(SimulatorError, match="not an unanswered call status"):
        ringing().not_answered("completed")
    turn = ringing().not_answered("busy")
    assert turn.ended and turn.notes == ["not answered (busy)"]
    _, row = reload(clean_db, ticket)
    assert row.unanswered == 1
    answered = ringing()
    answered.answered_by = "human"
    answered.start()
    with pytest.raises(SimulatorError, match="already answered"):
        answered.not_answered()
