"""The production layout in miniature: two uvicorn web processes and two ``hotline worker``
processes on one database and one Redis. A voice call whose steps alternate between the web
processes goes on as if one process served it; its jobs run once, whichever worker takes them.
A text to one web process is answered by the workers, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.settings import Settings
from tests.conftest import TwilioSigner, sms_params
from tests.ivr_flows.phone import PhoneCall
from tests.live_server import free_port, process_env
from tickets import outbox
from tickets.models import (
    InboundMessage,
    OutboundMessage,
    OutboxMessage,
    Ticket,
    TicketEvent,
    TicketState,
)

BIN = Path(sys.executable).parent


class Alternating:
    """A client that sends each request to the next web process in turn (a round-robin proxy)."""

    def __init__(self, ports: list[int]) -> None:
        self.clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30) for p in ports]
        self.served: list[int] = []

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        index = len(self.served) % len(self.clients)
        self.served.append(index)
        return self.clients[index].post(path, **kwargs)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def cluster(settings: Settings, clean_db: Engine, redis_conn: redis.Redis) -> Iterator[list[int]]:
    redis_conn.flushdb()
    env = process_env(settings)
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [str(BIN / "python"), "-m", "uvicorn", "hotline.app:app", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ] + [
        subprocess.Popen(
            [str(BIN / "hotline"), "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            while True:
                assert time.monotonic() < deadline, "a web process did not start"
                assert all(p.poll() is None for p in processes), "a process exited"
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        yield ports
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for(check: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_call_alternating_between_web_processes_and_its_jobs_run_once(
    cluster: list[int], settings: Settings, twilio: TwilioSigner, clean_db: Engine
) -> None:
    client = Alternating(cluster)
    try:
        call = PhoneCall(client, twilio, settings)  # type: ignore[arg-type]
        first = call.start()
        assert first.verbs and first.step  # greeting: waits for a key
        call.silence()  # Mandarin
        confirm = call.say("我们公司在渝北区 想申请一笔贷款扩大生产")
        opened = call.press("1")  # in office hours: ticket announced; after: voicemail
        call.status("completed")
    finally:
        client.close()
    assert client.served == [0, 1, 0, 1, 0]  # every step on the other process
    assert confirm.step and opened.step and opened.step != confirm.step
    with Session(clean_db) as session:
        [ticket] = session.exec(select(Ticket)).all()
    assert ticket.channel == "voice" and ticket.category == "financing"
    assert ticket.state == TicketState.dispatched

    # The confirmation SMS job (queued by the web process) is sent once by one of the workers.
    def confirmations() -> list[OutboundMessage]:
        with Session(clean_db) as session:
            return list(
                session.exec(
                    select(OutboundMessage).where(OutboundMessage.ticket_id == ticket.id)
                ).all()
            )

    sent = _wait_for(confirmations, "the confirmation SMS")
    time.sleep(1.0)
    assert len(confirmations()) == len(sent) == 1

    # The accept clock runs out now, and three copies of its SLA check are due at once: every
    # web process and worker may relay them, both workers may take them; the case is escalated
    # exactly once and each copy is done exactly once.
    past = datetime.now(UTC) - timedelta(minutes=1)
    with Session(clean_db) as session:
        session.exec(update(Ticket).where(col(Ticket.id) == ticket.id).values(accept_due_at=past))  # type: ignore[call-overload]
        rows = [
            outbox.add(
                session,
                "sla_check",
                {"ticket_id": ticket.id, "clock": "accept", "due": past.isoformat()},
                ticket_id=ticket.id,
                queue="high",
            )
            for _ in range(3)
        ]
        session.commit()
        ids = [row.id for row in rows]

    def escalated() -> list[TicketEvent]:
        with Session(clean_db) as session:
            return list(
                session.exec(
                    select(TicketEvent).where(
                        TicketEvent.ticket_id == ticket.id, TicketEvent.action == "escalate"
                    )
                ).all()
            )

    _wait_for(escalated, "the SLA check to escalate (relayed by a worker within 5 s)")
    time.sleep(2.0)  # time for the other copies to run, and for a second escalation if any
    assert len(escalated()) == 1
    with Session(clean_db) as session:
        assert session.get_one(Ticket, ticket.id).state == TicketState.escalated

    def states() -> list[tuple[int | None, str]]:
        with Session(clean_db) as session:
            found = session.exec(select(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
            return [(r.id, r.result if r.done_at is not None else "NOT DONE") for r in found]

    # Every copy is done well within SQLite's 30 s busy timeout: a job that waited it out (a
    # work horse forked during the relay's commit, see hotline.worker) would still be pending.
    deadline = time.monotonic() + 10
    while any(result == "NOT DONE" for _id, result in states()) and time.monotonic() < deadline:
        time.sleep(0.3)
    outcome = states()
    assert all(result != "NOT DONE" for _id, result in outcome), outcome
    assert sorted(result for _id, result in outcome).count("escalated") == 1, outcome

    # A text to one web process: answered at once with empty TwiML, then by a worker (woken by
    # the web process through Redis), once.
    sender = "+8613912340000"
    params = sms_params(
        "我们公司在渝北区，想申请一笔贷款", sid="SM" + "5" * 32, sender=sender, settings=settings
    )
    with httpx.Client(base_url=f"http://127.0.0.1:{cluster[1]}", timeout=30) as web:
        response = web.post(
            "/twilio/sms",
            data=params,
            headers={"X-Twilio-Signature": twilio.signature("/twilio/sms", params)},
        )
    assert response.status_code == 200, response.text
    assert response.text.endswith("<Response />"), response.text

    def answered() -> tuple[InboundMessage, list[OutboundMessage]] | None:
        with Session(clean_db) as session:
            message = session.exec(
                select(InboundMessage).where(InboundMessage.message_sid == params["MessageSid"])
            ).one()
            replies = session.exec(
                select(OutboundMessage).where(
                    OutboundMessage.purpose == "sms_reply", OutboundMessage.to_number == sender
                )
            ).all()
        if message.answered_at is None or len(replies) != 1:
            return None
        return message, list(replies)

    message, [reply] = _wait_for(answered, "a worker to answer the text", timeout=20)
    assert message.ticket_id is not None and reply.ticket_id == message.ticket_id
    assert reply.body == message.reply and message.reply
    with Session(clean_db) as session:
        assert session.get_one(Ticket, message.ticket_id).number in message.reply
    time.sleep(1.0)  # time for a second reply, if any
    assert answered() is not None  # still exactly one
