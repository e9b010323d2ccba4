"""The telephony port: outbound calls and SMS, with two adapters.

- :class:`TwilioTelephony` uses Twilio's REST API through a ``twilio.rest.Client`` built at
  start-up from the settings (never at import);
- :class:`OfflineTelephony` places nothing: it records the call or message as ``queued`` so the
  phone simulator and the tests can answer it.

Both record every call (``outbound_call``) and message (``outbound_message``) in the caller's
transaction, so the record and the state change it belongs to commit together. Every SMS to a
firm goes through :meth:`Telephony.sms_firm`, which honours the firm's opt-out: the message is
recorded as ``suppressed`` and not sent.

Which adapter runs is decided by the start-up wiring (``hotline.wiring.configure_domain``): Twilio
when its credentials are configured, offline otherwise.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import Session

from kb.db import utcnow
from tickets.models import Firm, OutboundCall, OutboundMessage

log = logging.getLogger(__name__)


class Telephony(ABC):
    provider = "abstract"

    def __init__(self, from_number: str) -> None:
        self.from_number = from_number

    def sms_firm(
        self,
        session: Session,
        firm: Firm | None,
        *,
        to: str,
        body: str,
        purpose: str,
        ticket_id: int | None = None,
        despite_opt_out: bool = False,
        from_number: str | None = None,
    ) -> OutboundMessage:
        """An SMS to a firm's number, unless the firm has opted out of SMS (``despite_opt_out``:
        the one confirmation that its opt-out was recorded). ``from_number``: the hotline number
        the firm texted, for a reply; the adapter's own otherwise."""
        message = self._record_message(
            session,
            to_number=to,
            body=body,
            purpose=purpose,
            ticket_id=ticket_id,
            firm_id=firm.id if firm else None,
            from_number=from_number or self.from_number,
        )
        if firm is not None and firm.sms_opted_out and not despite_opt_out:
            message.status = "suppressed"
            session.add(message)
            session.flush()
            return message
        return self._send(session, message)

    def sms_institution(
        self,
        session: Session,
        *,
        institution_id: int,
        to: str,
        body: str,
        purpose: str,
        ticket_id: int | None = None,
    ) -> OutboundMessage:
        """A notice to a platform or institution (they have no opt-out: it is their duty)."""
        message = self._record_message(
            session,
            to_number=to,
            body=body,
            purpose=purpose,
            ticket_id=ticket_id,
            institution_id=institution_id,
        )
        return self._send(session, message)

    def call(
        self, session: Session, *, to: str, url: str, purpose: str, ticket_id: int | None = None
    ) -> OutboundCall:
        call = OutboundCall(
            to_number=to,
            from_number=self.from_number,
            url=url,
            purpose=purpose,
            ticket_id=ticket_id,
            provider=self.provider,
        )
        session.add(call)
        session.flush()
        return self._place(session, call)

    def _record_message(self, session: Session, **fields: Any) -> OutboundMessage:
        fields.setdefault("from_number", self.from_number)
        message = OutboundMessage(provider=self.provider, **fields)
        session.add(message)
        session.flush()
        return message

    @abstractmethod
    def _send(self, session: Session, message: OutboundMessage) -> OutboundMessage: ...

    @abstractmethod
    def _place(self, session: Session, call: OutboundCall) -> OutboundCall: ...


class OfflineTelephony(Telephony):
    """Records and sends nothing: the rows wait, ``queued``, for the simulator or a test."""

    provider = "offline"

    def _send(self, session: Session, message: OutboundMessage) -> OutboundMessage:
        return message

    def _place(self, session: Session, call: OutboundCall) -> OutboundCall:
        return call


class TwilioTelephony(Telephony):
    provider = "twilio"

    def __init__(self, client: Any, from_number: str, status_callback_base: str | None = None):
        super().__init__(from_number)
        self.client = client
        self.status_callback_base = status_callback_base

    @classmethod
    def from_credentials(
        cls, account_sid: str, auth_token: str, from_number: str, **kwargs: Any
    ) -> TwilioTelephony:
        from twilio.rest import Client

        return cls(Client(account_sid, auth_token), from_number, **kwargs)

    def _send(self, session: Session, message: OutboundMessage) -> OutboundMessage:
        options: dict[str, Any] = {}
        if self.status_callback_base:
            options["status_callback"] = f"{self.status_callback_base}/twilio/message-status"
        sent = self.client.messages.create(
            to=message.to_number, from_=message.from_number, body=message.body, **options
        )
        message.provider_sid = sent.sid
        message.status = str(sent.status or "queued")
        message.updated_at = utcnow()
        session.add(message)
        session.flush()
        return message

    def _place(self, session: Session, call: OutboundCall) -> OutboundCall:
        options: dict[str, Any] = {}
        if self.status_callback_base:
            # The status callback carries the same ticket as the call's URL, so an unanswered
            # revisit call (which never reaches its flow) is still counted as no answer.
            query = urlsplit(call.url).query
            options["status_callback"] = f"{self.status_callback_base}/twilio/call-status" + (
                f"?{query}" if query else ""
            )
            options["status_callback_event"] = ["initiated", "ringing", "answered", "completed"]
        if call.purpose == "revisit":
            # An answering machine is not the firm: the revisit flow treats it as no answer.
            options["machine_detection"] = "Enable"
        placed = self.client.calls.create(
            to=call.to_number, from_=call.from_number, url=call.url, **options
        )
        call.provider_sid = placed.sid
        call.status = str(placed.status or "queued")
        call.updated_at = utcnow()
        session.add(call)
        session.flush()
        return call


_current: Telephony | None = None


def configure(adapter: Telephony) -> None:
    """Install the process's adapter (the start-up wiring does this)."""
    global _current
    _current = adapter


def current() -> Telephony:
    if _current is None:
        raise RuntimeError("telephony not configured: call tickets.telephony.configure at start-up")
    return _current
