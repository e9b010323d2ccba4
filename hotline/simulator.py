"""A phone simulator: plays Twilio's part against the running app, over HTTP, offline.

It is an ordinary HTTP client of the webhooks, not a back door: every request is signed with
the auth token exactly as Twilio signs it (``RequestValidator.compute_signature`` over the
public URL and the form fields), and it follows the TwiML it gets back as Twilio would: it
collects what ``<Say>`` would speak, waits where ``<Gather>``, ``<Record>``, ``<Dial>`` or
``<Enqueue>`` wait, follows ``<Redirect>`` at once, and ends at ``<Hangup>`` (or at the end of
a document), then posts the call's ``completed`` status callback.

The engine keeps no terminal state: :class:`CallSimulator` returns a :class:`Turn` (what was
said, what the phone waits for) after each action, as plain data, so a terminal loop, a script
runner or a web page can drive it alike; :meth:`CallSimulator.snapshot` and
:meth:`CallSimulator.restore` carry a call across requests (the /simulator page keeps it in
Redis).

Signing and sending are separate: requests are signed for the public URL (what Twilio calls)
and sent to ``send_base`` when given (e.g. the app's local address behind a proxy).
"""

from __future__ import annotations

import re
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
MAX_REDIRECTS = 25
UNANSWERED = ("no-answer", "busy", "failed")
ENGLISH_OFFER = re.compile(r"for english,? press (\d)", re.IGNORECASE)


class SimulatorError(RuntimeError):
    """The app answered something Twilio would reject (an HTTP error, a document not TwiML)."""


@dataclass(frozen=True)
class Said:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Waiting:
    """What the phone waits for: ``input`` is ``dtmf``, ``speech``, ``dtmf speech``, ``record``,
    ``dial`` or ``queue``."""

    input: str
    action: str
    fallthrough: str | None = None
    num_digits: int | None = None
    finish_on_key: str | None = None
    number: str = ""
    status_callback: str | None = None

    @property
    def takes_keys(self) -> bool:
        return "dtmf" in self.input.split()

    @property
    def takes_speech(self) -> bool:
        return "speech" in self.input.split()


# What the phone noticed, besides words: ``notes`` carries them as English text (the terminal
# prints it), ``marks`` as (code, value) pairs that a page translates.
NOTE_TEXTS = {
    "english": "pressed {value} for English",
    "recording": "recording after the tone",
    "recording_sent": "recording status callback sent",
    "dialling": "dialling {value}",
    "queue": "waiting in the agent queue {value}",
    "ignored": "(ignored <{value}>)",
    "ended": "call ended",
    "hung_up": "caller hung up",
    "not_answered": "not answered ({value})",
}


@dataclass(frozen=True)
class Mark:
    code: str
    value: str = ""

    @property
    def text(self) -> str:
        return NOTE_TEXTS[self.code].format(value=self.value).strip()


@dataclass
class Turn:
    said: list[Said] = field(default_factory=list)
    waiting: Waiting | None = None
    ended: bool = False
    notes: list[str] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def note(self, code: str, value: str = "", *, first: bool = False) -> None:
        mark = Mark(code, value)
        index = 0 if first else len(self.marks)
        self.marks.insert(index, mark)
        self.notes.insert(0 if first else len(self.notes), mark.text)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.said)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Transport = Callable[[str, dict[str, str], dict[str, str]], httpx.Response]


class Signer:
    """Signs and sends a form POST as Twilio does."""

    def __init__(
        self,
        auth_token: str,
        *,
        public_base: str,
        send_base: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        self.validator = RequestValidator(auth_token)
        self.public_base = public_base.rstrip("/")
        self.send_base = (send_base or public_base).rstrip("/")
        self.client = client or httpx.Client(timeout=15.0)

    def public(self, url_or_path: str) -> str:
        return urljoin(self.public_base + "/", url_or_path)

    def target(self, public_url: str) -> str:
        """Where to send a request signed for ``public_url``: the same path on ``send_base``."""
        if public_url.startswith(self.public_base):
            return self.send_base + public_url[len(self.public_base) :]
        return public_url

    def post(self, url_or_path: str, params: dict[str, str]) -> httpx.Response:
        url = self.public(url_or_path)
        signature = self.validator.compute_signature(url, params)
        response = self.client.post(
            self.target(url), data=params, headers={"X-Twilio-Signature": str(signature)}
        )
        if response.status_code != 200:
            raise SimulatorError(
                f"{urlsplit(url).path} answered {response.status_code}: {response.text[:200]}"
            )
        return response


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class CallSimulator:
    """One call to the hotline (or, with ``direction="outbound-api"``, one call from it)."""

    def __init__(
        self,
        signer: Signer,
        *,
        caller: str,
        to: str,
        path: str = "/twilio/voice",
        status_path: str = "/twilio/call-status",
        direction: str = "inbound",
        call_sid: str | None = None,
        answered_by: str | None = None,
    ) -> None:
        self.signer = signer
        self.caller = caller
        self.to = to
        self.path = path
        self.status_path = status_path
        self.direction = direction
        self.call_sid = call_sid or _sid("CA")
        self.answered_by = answered_by
        # Wall-clock time, not monotonic: a snapshot may be resumed by another process.
        self.started = time.time()
        self.waiting: Waiting | None = None
        self.ended = False
        self.sequence = 0

    # -- keeping a call between requests ---------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The call as plain JSON-able data (no signer): a web page keeps it between requests
        and resumes it with :meth:`restore`, in whichever process answers next."""
        return {
            "caller": self.caller,
            "to": self.to,
            "path": self.path,
            "status_path": self.status_path,
            "direction": self.direction,
            "call_sid": self.call_sid,
            "answered_by": self.answered_by,
            "started": self.started,
            "waiting": asdict(self.waiting) if self.waiting is not None else None,
            "ended": self.ended,
            "sequence": self.sequence,
        }

    @classmethod
    def restore(cls, signer: Signer, data: dict[str, Any]) -> CallSimulator:
        call = cls(
            signer,
            caller=str(data["caller"]),
            to=str(data["to"]),
            path=str(data["path"]),
            status_path=str(data["status_path"]),
            direction=str(data["direction"]),
            call_sid=str(data["call_sid"]),
            answered_by=data.get("answered_by"),
        )
        call.started = float(data["started"])
        call.waiting = Waiting(**data["waiting"]) if data.get("waiting") else None
        call.ended = bool(data["ended"])
        call.sequence = int(data["sequence"])
        return call

    # -- what the caller does --------------------------------------------------------------

    def start(self, *, language: str = "zh") -> Turn:
        extra = {"AnsweredBy": self.answered_by} if self.answered_by else {}
        turn = self._request(self.path, extra)
        if language == "en" and turn.waiting is not None and turn.waiting.takes_keys:
            # Callers who want English press the key the greeting offers for it.
            offer = ENGLISH_OFFER.search(turn.text)
            if offer:
                more = self.press(offer.group(1))
                more.said[:0] = turn.said
                more.note("english", offer.group(1), first=True)
                more.notes[:0] = turn.notes
                more.marks[:0] = turn.marks
                return more
        return turn

    def press(self, digits: str) -> Turn:
        waiting = self._expect("dtmf")
        return self._request(waiting.action, {"Digits": digits})

    def say(self, speech: str, confidence: float = 0.9) -> Turn:
        waiting = self._expect("speech")
        return self._request(
            waiting.action, {"SpeechResult": speech, "Confidence": f"{confidence:.2f}"}
        )

    def silence(self) -> Turn:
        """No input: Twilio goes on to the verb after the one that waited."""
        waiting = self._expect(None)
        if waiting.fallthrough:
            return self._request(waiting.fallthrough, {})
        return self._end("completed")

    def record(self, message: str) -> Turn:
        """A recording (``message`` stands for the audio; empty means nothing was said)."""
        waiting = self._expect("record")
        if not message.strip():
            return self.silence()
        recording_sid = _sid("RE")
        url = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}"
        duration = str(max(1, len(message) // 4))
        params = {
            "RecordingUrl": url,
            "RecordingSid": recording_sid,
            "RecordingDuration": duration,
            "Digits": "#",
        }
        turn = self._request(waiting.action, params)
        if waiting.status_callback:
            self.signer.post(
                waiting.status_callback,
                {
                    **self._base(),
                    "RecordingSid": recording_sid,
                    "RecordingUrl": url,
                    "RecordingStatus": "completed",
                    "RecordingDuration": duration,
                    "RecordingChannels": "1",
                    "RecordingSource": "RecordVerb",
                },
            )
            turn.note("recording_sent", first=True)
        return turn

    def dial(self, outcome: str = "no-answer") -> Turn:
        """The dialled party answered (``completed``) or not (``no-answer``, ``busy``, …)."""
        waiting = self._expect("dial")
        duration = "42" if outcome == "completed" else "0"
        return self._request(
            waiting.action, {"DialCallStatus": outcome, "DialCallDuration": duration}
        )

    def queue(self, result: str = "hangup") -> Turn:
        """What happened in the agent queue: ``bridged``, ``queue-full``, ``leave``, …"""
        waiting = self._expect("queue")
        return self._request(waiting.action, {"QueueResult": result, "QueueTime": "30"})

    def hangup(self) -> Turn:
        return self._end("completed")

    def not_answered(self, status: str = "no-answer") -> Turn:
        """An outbound call the callee never picks up (``no-answer``, ``busy``, ``failed``):
        Twilio requests no TwiML, it only reports the call's end to the status callback."""
        if status not in UNANSWERED:
            raise SimulatorError(
                f"not an unanswered call status: {status} ({', '.join(UNANSWERED)})"
            )
        if self.ended or self.waiting is not None:
            raise SimulatorError("the call was already answered")
        self._status(status, duration="0")
        turn = Turn(ended=True)
        turn.note("not_answered", status)
        return turn

    # -- Twilio's side ---------------------------------------------------------------------

    def _base(self) -> dict[str, str]:
        outbound = self.direction.startswith("outbound")
        return {
            "CallSid": self.call_sid,
            "AccountSid": ACCOUNT_SID,
            "From": self.to if outbound else self.caller,
            "To": self.caller if outbound else self.to,
            "Caller": self.to if outbound else self.caller,
            "Called": self.caller if outbound else self.to,
            "CallStatus": "in-progress",
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
        }

    def _expect(self, kind: str | None) -> Waiting:
        if self.ended or self.waiting is None:
            raise SimulatorError("the call has ended")
        waiting = self.waiting
        if kind == "dtmf" and not waiting.takes_keys:
            raise SimulatorError(f"the hotline is not waiting for keys but for {waiting.input}")
        if kind == "speech" and not waiting.takes_speech:
            raise SimulatorError(f"the hotline is not waiting for speech but for {waiting.input}")
        if kind in ("record", "dial", "queue") and waiting.input != kind:
            raise SimulatorError(f"the hotline is waiting for {waiting.input}, not {kind}")
        return waiting

    def _request(self, url: str, extra: dict[str, str]) -> Turn:
        turn = Turn()
        params = {**self._base(), **extra}
        for _ in range(MAX_REDIRECTS):
            response = self.signer.post(url, params)
            redirect = self._interpret(response.text, turn)
            if redirect is None:
                turn.waiting = self.waiting
                return turn
            url, params = redirect, self._base()
        raise SimulatorError(f"more than {MAX_REDIRECTS} redirects without input")

    def _interpret(self, document: str, turn: Turn) -> str | None:
        """Play a TwiML document into ``turn``; return a Redirect to follow, else None."""
        try:
            root = ET.fromstring(document)
        except ET.ParseError as exc:
            raise SimulatorError(f"not TwiML: {exc}") from None
        if root.tag != "Response":
            raise SimulatorError(f"not TwiML: root is <{root.tag}>")
        self.waiting = None
        verbs = list(root)
        for index, verb in enumerate(verbs):
            after = _next_redirect(verbs[index + 1 :])
            if verb.tag == "Say":
                turn.said.append(Said(verb.text or "", verb.attrib.get("language", "")))
            elif verb.tag == "Play":
                turn.said.append(Said(f"[audio {verb.text or ''}]"))
            elif verb.tag == "Pause":
                continue
            elif verb.tag == "Redirect":
                return verb.text or ""
            elif verb.tag == "Gather":
                turn.said += [
                    Said(s.text or "", s.attrib.get("language", "")) for s in verb.iter("Say")
                ]
                self.waiting = Waiting(
                    input=verb.attrib.get("input", "dtmf"),
                    action=verb.attrib.get("action", ""),
                    fallthrough=after,
                    num_digits=int(verb.attrib["numDigits"])
                    if "numDigits" in verb.attrib
                    else None,
                    finish_on_key=verb.attrib.get("finishOnKey"),
                )
                break
            elif verb.tag == "Record":
                self.waiting = Waiting(
                    input="record",
                    action=verb.attrib.get("action", ""),
                    fallthrough=after,
                    finish_on_key=verb.attrib.get("finishOnKey"),
                    status_callback=verb.attrib.get("recordingStatusCallback"),
                )
                turn.note("recording")
                break
            elif verb.tag == "Dial":
                number = " ".join(n.text or "" for n in verb.iter("Number")) or (verb.text or "")
                self.waiting = Waiting(
                    input="dial", action=verb.attrib.get("action", ""), number=number.strip()
                )
                turn.note("dialling", number.strip())
                break
            elif verb.tag == "Enqueue":
                task = " ".join(t.text or "" for t in verb.iter("Task"))
                self.waiting = Waiting(input="queue", action=verb.attrib.get("action", ""))
                turn.note("queue", task.strip())
                break
            elif verb.tag in ("Hangup", "Reject"):
                self._finish(turn)
                return None
            else:
                turn.note("ignored", verb.tag)
        if self.waiting is None:
            # The end of a document hangs up.
            self._finish(turn)
        return None

    def _finish(self, turn: Turn) -> None:
        turn.ended = True
        self._status("completed")
        turn.note("ended")

    def _end(self, status: str) -> Turn:
        turn = Turn(ended=True)
        if not self.ended:
            self._status(status)
            turn.note("hung_up")
        return turn

    def _status(self, status: str, *, duration: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        self.waiting = None
        params = {
            **self._base(),
            "CallStatus": status,
            "CallDuration": duration or str(max(0, int(time.time() - self.started))),
            "SequenceNumber": str(self.sequence),
        }
        self.sequence += 1
        self.signer.post(self.status_path, params)


def _next_redirect(rest: Iterable[ET.Element]) -> str | None:
    for verb in rest:
        if verb.tag == "Redirect":
            return verb.text or ""
    return None


@dataclass(frozen=True)
class SentText:
    """A text the webhook took: its MessageSid, and what the webhook's TwiML said at once (the
    hotline answers texts from a worker, so this is empty unless it apologised)."""

    message_sid: str
    immediate: list[str]


class SmsSimulator:
    """Texts to the hotline, as Twilio's Messaging webhook delivers them. The hotline's reply
    comes later, from a worker, through the telephony port: see :func:`await_reply`."""

    def __init__(self, signer: Signer, *, sender: str, to: str, path: str = "/twilio/sms"):
        self.signer = signer
        self.sender = sender
        self.to = to
        self.path = path

    def send(self, body: str) -> SentText:
        sid = _sid("SM")
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": ACCOUNT_SID,
            "MessagingServiceSid": "",
            "From": self.sender,
            "To": self.to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": "2010-04-01",
        }
        response = self.signer.post(self.path, params)
        try:
            root = ET.fromstring(response.text)
        except ET.ParseError as exc:
            raise SimulatorError(f"not TwiML: {exc}") from None
        return SentText(sid, [m.text or "" for m in root.iter("Message")])


def await_reply(
    read_reply: Callable[[str], str | None],
    message_sid: str,
    *,
    timeout: float,
    poll_seconds: float = 0.1,
) -> str | None:
    """Wait for the hotline's reply to a text: ``read_reply(sid)`` gives it once a worker has
    answered the text ("" when it sends none), None before. None if not answered in time (no
    worker running)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = read_reply(message_sid)
        if reply is not None or time.monotonic() >= deadline:
            return reply
        time.sleep(poll_seconds)


# --- scripts ----------------------------------------------------------------------------------


class ScriptError(ValueError):
    pass


@dataclass(frozen=True)
class ScriptLine:
    number: int
    verb: str
    argument: str


SCRIPT_VERBS = ("press", "say", "silence", "record", "dial", "queue", "hangup", "expect")


def parse_script(text: str) -> list[ScriptLine]:
    """One action a line: ``press 1``, ``say 想申请贷款``, ``silence``, ``record 留言``,
    ``dial no-answer``, ``queue leave``, ``hangup``, ``expect 工单号`` (the last turn must say
    it). ``#`` starts a comment."""
    lines: list[ScriptLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, argument = line.partition(" ")
        verb = verb.rstrip(":").lower()
        if verb not in SCRIPT_VERBS:
            raise ScriptError(f"line {number}: unknown action {verb!r} ({', '.join(SCRIPT_VERBS)})")
        lines.append(ScriptLine(number, verb, argument.strip()))
    return lines


def run_line(call: CallSimulator, line: ScriptLine, last: Turn) -> Turn:
    if line.verb == "expect":
        if line.argument not in last.text:
            raise ScriptError(f"line {line.number}: expected {line.argument!r} in {last.text!r}")
        return last
    actions: dict[str, Callable[[], Turn]] = {
        "press": lambda: call.press(line.argument),
        "say": lambda: call.say(line.argument),
        "silence": call.silence,
        "record": lambda: call.record(line.argument),
        "dial": lambda: call.dial(line.argument or "no-answer"),
        "queue": lambda: call.queue(line.argument or "hangup"),
        "hangup": call.hangup,
    }
    try:
        return actions[line.verb]()
    except SimulatorError as exc:
        raise ScriptError(f"line {line.number}: {exc}") from None
