"""The telephony port: the adapter follows from the settings, the offline one records what a
real one would send, and every SMS to a firm honours its opt-out."""

from __future__ import annotations

import json
import logging

from sqlmodel import Session, select
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

from hotline.settings import Settings
from hotline.wiring import build_telephony
from tickets.models import Firm, OutboundCall, OutboundMessage
from tickets.telephony import OfflineTelephony, TwilioTelephony


def test_the_adapter_follows_the_twilio_credentials(settings: Settings) -> None:
    offline = build_telephony(settings)
    assert isinstance(offline, OfflineTelephony) and offline.from_number == settings.main_number
    configured = settings.model_copy(
        update={"twilio_account_sid": "AC" + "1" * 32, "twilio_auth_token": "x" * 32}
    )
    assert configured.twilio_configured
    adapter = build_telephony(configured)
    assert isinstance(adapter, TwilioTelephony)
    assert isinstance(adapter.client, Client)  # built now, at start-up; no request is made
    assert adapter.client.account_sid == "AC" + "1" * 32


def test_the_offline_adapter_records_calls_and_messages(session: Session) -> None:
    phone = OfflineTelephony("+862312345")
    firm = Firm(phone="+8613800138000")
    quiet = Firm(phone="+8613900139000", sms_opted_out=True)
    session.add_all([firm, quiet])
    session.flush()
    call = phone.call(
        session, to=firm.phone, url="https://x.test/twilio/revisit?ticket=1", purpose="revisit"
    )
    sent = phone.sms_firm(session, firm, to=firm.phone, body="您好", purpose="revisit_survey")
    held = phone.sms_firm(session, quiet, to=quiet.phone, body="您好", purpose="revisit_survey")
    session.commit()
    assert (call.status, call.provider, call.from_number) == ("queued", "offline", "+862312345")
    assert sent.status == "queued" and sent.firm_id == firm.id
    assert held.status == "suppressed"  # recorded as due, never sent
    assert len(session.exec(select(OutboundMessage)).all()) == 2
    assert session.exec(select(OutboundCall)).one().url.endswith("ticket=1")


class _CapturingTransport(HttpClient):
    """Twilio's own client builds the real REST requests; only the network is replaced, since
    nothing outside this machine can be reached. It answers as Twilio's API does."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False)
        self.requests: list[tuple[str, str, dict[str, object]]] = []

    def request(  # type: ignore[override]
        self,
        method: str,
        uri: str,
        params=None,
        data=None,
        headers=None,
        auth=None,  # noqa: ANN001
        timeout=None,
        allow_redirects=False,  # noqa: ANN001
    ) -> Response:
        self.requests.append((method, uri, dict(data or {})))
        kind = "Calls" if uri.endswith("/Calls.json") else "Messages"
        sid = ("CA" if kind == "Calls" else "SM") + "9" * 32
        body = {"sid": sid, "status": "queued", "account_sid": "AC" + "1" * 32}
        return Response(201, json.dumps(body))


def test_the_twilio_adapter_asks_for_status_callbacks_and_machine_detection(
    session: Session,
) -> None:
    transport = _CapturingTransport()
    client = Client("AC" + "1" * 32, "x" * 32, http_client=transport)
    adapter = TwilioTelephony(client, "+862312345", status_callback_base="https://hl.example")
    firm = Firm(phone="+8613800138000")
    session.add(firm)
    session.flush()
    call = adapter.call(
        session,
        to=firm.phone,
        url="https://hl.example/twilio/revisit?ticket=CQ2611270001-B",
        purpose="revisit",
    )
    message = adapter.sms_firm(session, firm, to=firm.phone, body="您好", purpose="notice")
    session.commit()

    (call_method, call_uri, call_data), (_, message_uri, message_data) = transport.requests
    assert call_method == "POST" and call_uri.endswith("/Calls.json")
    assert call_data["Url"] == "https://hl.example/twilio/revisit?ticket=CQ2611270001-B"
    assert call_data["StatusCallback"] == (
        "https://hl.example/twilio/call-status?ticket=CQ2611270001-B"
    )
    assert call_data["MachineDetection"] == "Enable"
    assert message_uri.endswith("/Messages.json")
    assert message_data["StatusCallback"] == "https://hl.example/twilio/message-status"
    assert call.provider_sid == "CA" + "9" * 32 and message.provider_sid == "SM" + "9" * 32
