"""A test-side Twilio: signed requests for one call, and TwiML parsed with xml.etree."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from hotline.settings import Settings
from tests.conftest import TwilioSigner

# Monday 30 November 2026, 10:00 and 22:00 in Chongqing (UTC+8): in and out of office hours.
OFFICE_HOURS = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
AFTER_HOURS = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
CALLER = "+8613800138000"
_sids = itertools.count(1)


def new_sid(prefix: str = "CA") -> str:
    return f"{prefix}{next(_sids):032x}"


@dataclass
class Twiml:
    text: str

    @property
    def root(self) -> ET.Element:
        root = ET.fromstring(self.text)
        assert root.tag == "Response"
        return root

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    def first(self, tag: str) -> ET.Element:
        found = self.root.find(tag)
        assert found is not None, f"no <{tag}> in {self.text}"
        return found

    @property
    def says(self) -> list[str]:
        return [el.text or "" for el in self.root.iter("Say")]

    @property
    def spoken(self) -> str:
        return " ".join(self.says)

    @property
    def action(self) -> str:
        """The action URL of the verb that waits for the caller (Gather, Record, Dial, Enqueue)."""
        for tag in ("Gather", "Record", "Dial", "Enqueue"):
            found = self.root.find(tag)
            if found is not None:
                return found.attrib["action"]
        raise AssertionError(f"nothing waits for input in {self.text}")

    @property
    def step(self) -> str:
        query = urlsplit(self.action).query
        return dict(p.split("=", 1) for p in query.split("&"))["step"]

    @property
    def redirect(self) -> str:
        return self.first("Redirect").text or ""


class PhoneCall:
    """One call as Twilio would make it: the first request, then the actions TwiML names."""

    def __init__(
        self,
        client: TestClient,
        twilio: TwilioSigner,
        settings: Settings,
        *,
        path: str = "/twilio/voice",
        caller: str = CALLER,
        to: str | None = None,
        sid: str | None = None,
        direction: str = "inbound",
    ) -> None:
        self.client, self.twilio, self.settings = client, twilio, settings
        self.path = path
        self.sid = sid or new_sid()
        self.caller = caller
        self.to = to or settings.main_number
        self.direction = direction
        self.last: Twiml | None = None

    def base(self) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": "AC" + "0" * 32,
            "From": self.caller if self.direction == "inbound" else self.to,
            "To": self.to if self.direction == "inbound" else self.caller,
            "Caller": self.caller,
            "CallStatus": "in-progress",
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }

    def post(self, url: str, headers: dict[str, str] | None = None, **params: str) -> Twiml:
        parts = urlsplit(url)
        assert url.startswith(self.settings.public_base_url) or url.startswith("/"), url
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = {**self.base(), **params}
        response = self.twilio.post(self.client, path, body, headers=headers or {})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        self.last = Twiml(response.text)
        return self.last

    def start(self, query: str = "", **params: str) -> Twiml:
        return self.post(self.path + query, **params)

    def press(self, digits: str) -> Twiml:
        assert self.last is not None
        return self.post(self.last.action, Digits=digits)

    def say(self, speech: str, confidence: str = "0.91") -> Twiml:
        assert self.last is not None
        return self.post(self.last.action, SpeechResult=speech, Confidence=confidence)

    def silence(self) -> Twiml:
        """The caller says nothing: Twilio falls through the Gather to the Redirect."""
        assert self.last is not None
        return self.post(self.last.redirect)

    def record(self, url: str = "https://api.twilio.com/rec/RE1", duration: str = "12") -> Twiml:
        assert self.last is not None
        return self.post(
            self.last.action,
            RecordingUrl=url,
            RecordingSid="RE" + self.sid[2:],
            RecordingDuration=duration,
            Digits="#",
        )

    def dial_result(self, status: str) -> Twiml:
        assert self.last is not None
        return self.post(self.last.action, DialCallStatus=status, DialCallDuration="0")

    def queue_result(self, result: str) -> Twiml:
        assert self.last is not None
        return self.post(self.last.action, QueueResult=result, QueueTime="30")

    def status(self, status: str, sequence: str = "3", **params: str) -> None:
        body = {**self.base(), "CallStatus": status, "SequenceNumber": sequence, **params}
        response = self.twilio.post(self.client, "/twilio/call-status", body)
        assert response.status_code == 200, response.text
        ET.fromstring(response.text)
