"""The telephony port: the adapter follows from the settings, the offline one records what a
real one would send, and every SMS to a firm honours its opt-out."""

from __future__ import annotations

from sqlmodel import Session, select
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
