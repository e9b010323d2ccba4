"""A small engine for voice flows written as data.

A flow file (``flow_*.yaml`` beside this module) lists steps, their prompts in Mandarin and
English, transitions, attempts and timeouts. The engine turns a step into TwiML with
``twilio.twiml.voice_response`` and, when Twilio posts the step's result back, decides the next
step from Twilio's parameters. Python only supplies named *actions* (what a result means: a
category understood, a ticket opened) that return an outcome; which step follows an outcome is
the flow file's business. Changing a prompt, a retry count or a timeout never touches Python.

Step kinds:

- ``gather``: say the prompts inside ``<Gather>``; the result (keys, speech or silence) posts back.
- ``say``: say the prompts, then go on to ``next`` in the same reply.
- ``record``: say the prompts, then ``<Record>``; the recording posts back.
- ``dial``: ``<Dial>`` a number; the dial status posts back.
- ``enqueue``: ``<Enqueue>`` the caller for an agent, with task data; the queue result posts back.
- ``action``: no TwiML; run the action at once and follow its outcome (chained in one reply).
- ``hangup``: say the prompts and hang up.

Transitions map an outcome to a step name, or to ``retry`` (the same step again, with its
``reprompt`` first, until ``attempts`` are used up, then the ``exhausted`` transition) or to
``hangup``. Without an action, a gather's outcome is the keys pressed, ``speech`` or ``silence``;
keys not listed fall to ``invalid``, and anything unlisted to ``default``.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

import yaml
from sqlmodel import Session
from twilio.twiml.voice_response import Gather, VoiceResponse

LANGUAGES = ("zh", "en")
STEP_KINDS = ("gather", "say", "record", "dial", "enqueue", "action", "hangup")
RETRY = "retry"
HANGUP = "hangup"
RESERVED_TARGETS = (RETRY, HANGUP)
SETTABLE = ("language",)
# A chain of action and say steps longer than this is a loop in the flow file, not a dialogue.
MAX_CHAIN = 32

_STEP_KEYS = {
    "say",
    "reprompt",
    "action",
    "prepare",
    "on",
    "next",
    "attempts",
    "gather",
    "record",
    "dial",
    "enqueue",
    "kind",
}


class FlowError(ValueError):
    """A flow file is wrong; the message names the file and the step."""


class FlowRuntimeError(RuntimeError):
    """A flow met a state its file does not cover (an outcome with no transition)."""


@dataclass(frozen=True)
class Voice:
    voice: str
    say_language: str
    speech_language: str


@dataclass(frozen=True)
class Transition:
    target: str
    set: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GatherSpec:
    input: str
    timeout: int
    num_digits: int | None = None
    finish_on_key: str | None = None
    speech_timeout: str | None = None
    hints: str | None = None


@dataclass(frozen=True)
class RecordSpec:
    max_length: int
    timeout: int
    finish_on_key: str
    play_beep: bool


@dataclass(frozen=True)
class DialSpec:
    number: str
    timeout: int
    caller_id: str | None
    time_limit: int | None


@dataclass(frozen=True)
class EnqueueSpec:
    workflow_sid: str
    task: Mapping[str, str]
    priority: int | None
    timeout: int | None


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    say: tuple[str, ...] = ()
    reprompt: tuple[str, ...] = ()
    action: str | None = None
    prepare: str | None = None
    on: Mapping[str, Transition] = field(default_factory=dict)
    attempts: int = 1
    gather: GatherSpec | None = None
    record: RecordSpec | None = None
    dial: DialSpec | None = None
    enqueue: EnqueueSpec | None = None


@dataclass(frozen=True)
class Flow:
    name: str
    source: str
    route: str
    start: str
    voices: Mapping[str, Voice]
    prompts: Mapping[str, Mapping[str, str]]
    steps: Mapping[str, Step]

    def prompt(self, key: str, language: str, values: Mapping[str, Any]) -> str:
        template = self.prompts[key][language if language in LANGUAGES else "zh"]
        return template.format_map(_Values(values, language))


class _Values(dict[str, Any]):
    """Prompt values; a value given per language (``{"zh": …, "en": …}``) is picked here."""

    def __init__(self, values: Mapping[str, Any], language: str) -> None:
        super().__init__(values)
        self.language = language

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, Mapping) and self.language in value:
            return value[self.language]
        return value


# --- what the engine hands to actions -------------------------------------------------------


@dataclass(frozen=True)
class Input:
    """What Twilio posted back for a step."""

    digits: str = ""
    speech: str = ""
    confidence: float | None = None
    recording_url: str = ""
    recording_sid: str = ""
    recording_duration: int = 0
    dial_status: str = ""
    queue_result: str = ""
    answered_by: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Input:
        def number(name: str) -> float | None:
            try:
                return float(params[name])
            except (KeyError, ValueError):
                return None

        return cls(
            digits=(params.get("Digits") or "").strip(),
            speech=(params.get("SpeechResult") or "").replace("\x00", "").strip(),
            confidence=number("Confidence"),
            recording_url=params.get("RecordingUrl") or "",
            recording_sid=params.get("RecordingSid") or "",
            recording_duration=int(number("RecordingDuration") or 0),
            dial_status=params.get("DialCallStatus") or "",
            queue_result=params.get("QueueResult") or "",
            answered_by=params.get("AnsweredBy") or "",
            params=dict(params),
        )


@dataclass
class Turn:
    """One webhook request of one call: what actions read and change.

    ``data`` is the call's state (persisted by the caller after the turn); ``vars`` inside it
    are the values prompts are filled from. ``now`` is the flow's clock: office hours are
    judged against it, so tests pass a fixed time instead of patching the system clock.
    """

    session: Session
    flow: Flow
    call_sid: str
    caller: str
    language: str
    data: dict[str, Any]
    base_url: str
    now: datetime
    config: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    retrying: bool = False

    @property
    def vars(self) -> dict[str, Any]:
        found = self.data.setdefault("vars", {})
        assert isinstance(found, dict)
        return found

    def values(self) -> dict[str, Any]:
        merged: dict[str, Any] = dict(self.config)
        merged.update(self.vars)
        merged["language"] = self.language
        return merged

    def url(self, route: str, **query: str | int) -> str:
        params = {**self.query, **{k: str(v) for k, v in query.items()}}
        return f"{self.base_url}{route}" + (f"?{urlencode(params)}" if params else "")


Action = Callable[[Turn, Input], str]
Prepare = Callable[[Turn], None]
Hints = Callable[[Turn], list[str]]


@dataclass(frozen=True)
class Registry:
    """The Python side of a flow: actions by name, prepare hooks, speech-hint providers."""

    actions: Mapping[str, Action] = field(default_factory=dict)
    prepares: Mapping[str, Prepare] = field(default_factory=dict)
    hints: Mapping[str, Hints] = field(default_factory=dict)


# --- loading and validation ------------------------------------------------------------------


def load_flow(filename: str, registry: Registry, text: str | None = None) -> Flow:
    """Read and check one flow file; any problem is a :class:`FlowError` naming file and step."""
    if text is None:
        text = (files("ivr_flows") / filename).read_text(encoding="utf-8")
    try:
        raw = yaml.load(text, Loader=_FlowYamlLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise FlowError(f"{filename}: not valid YAML: {exc}") from None
    return _Loader(filename, registry).flow(raw)


class _FlowYamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads on/off/yes/no as booleans; in a flow file ``on:`` is the transitions key
    and yes/no are outcomes, so only true/false are booleans here."""


_FlowYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class _Loader:
    def __init__(self, source: str, registry: Registry) -> None:
        self.source = source
        self.registry = registry

    def fail(self, where: str, message: str) -> FlowError:
        return FlowError(f"{self.source}: {where}: {message}")

    def flow(self, raw: Any) -> Flow:
        if not isinstance(raw, dict):
            raise FlowError(f"{self.source}: expected a mapping with name, start, steps")
        for key in ("name", "route", "start", "voices", "prompts", "steps"):
            if key not in raw:
                raise self.fail("flow", f"missing {key!r}")
        voices = self.voices(raw["voices"])
        prompts = self.prompts(raw["prompts"])
        if not isinstance(raw["steps"], dict) or not raw["steps"]:
            raise self.fail("steps", "expected a mapping of step names")
        steps = {str(name): self.step(str(name), body) for name, body in raw["steps"].items()}
        flow = Flow(
            name=str(raw["name"]),
            source=self.source,
            route=str(raw["route"]),
            start=str(raw["start"]),
            voices=voices,
            prompts=prompts,
            steps=steps,
        )
        self.check_links(flow)
        return flow

    def voices(self, raw: Any) -> dict[str, Voice]:
        if not isinstance(raw, dict):
            raise self.fail("voices", "expected a mapping per language")
        found: dict[str, Voice] = {}
        for language in LANGUAGES:
            body = raw.get(language)
            if not isinstance(body, dict):
                raise self.fail("voices", f"missing language {language!r}")
            try:
                found[language] = Voice(
                    voice=str(body["voice"]),
                    say_language=str(body["say_language"]),
                    speech_language=str(body["speech_language"]),
                )
            except KeyError as exc:
                raise self.fail(f"voices.{language}", f"missing {exc.args[0]!r}") from None
        return found

    def prompts(self, raw: Any) -> dict[str, dict[str, str]]:
        if not isinstance(raw, dict):
            raise self.fail("prompts", "expected a mapping of prompt keys")
        found: dict[str, dict[str, str]] = {}
        for key, texts in raw.items():
            if not isinstance(texts, dict):
                raise self.fail(f"prompt {key}", "expected zh and en texts")
            missing = [lang for lang in LANGUAGES if not str(texts.get(lang) or "").strip()]
            if missing:
                raise self.fail(f"prompt {key}", f"missing {' and '.join(missing)} text")
            names = {lang: _placeholders(str(texts[lang])) for lang in LANGUAGES}
            if names["zh"] != names["en"]:
                raise self.fail(
                    f"prompt {key}",
                    f"zh and en use different placeholders: {sorted(names['zh'])} vs "
                    f"{sorted(names['en'])}",
                )
            found[str(key)] = {lang: str(texts[lang]) for lang in LANGUAGES}
        return found

    def step(self, name: str, raw: Any) -> Step:
        where = f"step {name}"
        if not isinstance(raw, dict):
            raise self.fail(where, "expected a mapping")
        unknown = {str(key) for key in raw} - _STEP_KEYS
        if unknown:
            raise self.fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
        kinds = [k for k in ("gather", "record", "dial", "enqueue") if k in raw]
        if len(kinds) > 1:
            raise self.fail(where, f"a step is one of gather/record/dial/enqueue, not {kinds}")
        kind = str(raw.get("kind") or (kinds[0] if kinds else ""))
        if not kind:
            kind = "say" if "next" in raw else ("action" if "action" in raw else "hangup")
        if kind not in STEP_KINDS:
            raise self.fail(where, f"unknown kind {kind!r}")
        on = self.transitions(where, raw.get("on") or {})
        if "next" in raw:
            if "default" in on:
                raise self.fail(where, "give either next or on.default, not both")
            on["default"] = Transition(str(raw["next"]))
        attempts = raw.get("attempts", 1)
        if not isinstance(attempts, int) or attempts < 1:
            raise self.fail(where, "attempts must be a whole number >= 1")
        if any(t.target == RETRY for t in on.values()) and "exhausted" not in on:
            raise self.fail(where, "uses retry but has no 'exhausted' transition")
        action = raw.get("action")
        if action is not None and action not in self.registry.actions:
            raise self.fail(where, f"unknown action {action!r}")
        prepare = raw.get("prepare")
        if prepare is not None and prepare not in self.registry.prepares:
            raise self.fail(where, f"unknown prepare hook {prepare!r}")
        if kind == "action" and action is None:
            raise self.fail(where, "an action step needs an action")
        if kind in ("say", "action") and not on:
            raise self.fail(where, f"a {kind} step needs next or on")
        step = Step(
            name=name,
            kind=kind,
            say=self.prompt_keys(where, raw.get("say")),
            reprompt=self.prompt_keys(where, raw.get("reprompt")),
            action=action,
            prepare=prepare,
            on=on,
            attempts=attempts,
            gather=self.gather(where, raw["gather"]) if kind == "gather" else None,
            record=self.record(where, raw["record"]) if kind == "record" else None,
            dial=self.dial(where, raw["dial"]) if kind == "dial" else None,
            enqueue=self.enqueue(where, raw["enqueue"]) if kind == "enqueue" else None,
        )
        if kind in ("gather", "record", "dial", "enqueue") and not on:
            raise self.fail(where, f"a {kind} step needs transitions (on)")
        return step

    def prompt_keys(self, where: str, raw: Any) -> tuple[str, ...]:
        if raw is None:
            return ()
        keys = [raw] if isinstance(raw, str) else raw
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise self.fail(where, "say/reprompt must be a prompt key or a list of them")
        return tuple(keys)

    def transitions(self, where: str, raw: Any) -> dict[str, Transition]:
        if not isinstance(raw, dict):
            raise self.fail(where, "on must map outcomes to steps")
        found: dict[str, Transition] = {}
        for outcome, target in raw.items():
            if isinstance(target, str):
                found[str(outcome)] = Transition(target)
            elif isinstance(target, dict) and "next" in target:
                sets = target.get("set") or {}
                bad = set(sets) - set(SETTABLE)
                if bad or not isinstance(sets, dict):
                    raise self.fail(where, f"on.{outcome}: can only set {', '.join(SETTABLE)}")
                if "language" in sets and sets["language"] not in LANGUAGES:
                    raise self.fail(where, f"on.{outcome}: unknown language {sets['language']!r}")
                found[str(outcome)] = Transition(
                    str(target["next"]), {k: str(v) for k, v in sets.items()}
                )
            else:
                raise self.fail(where, f"on.{outcome}: expected a step name or {{next: step}}")
        return found

    def gather(self, where: str, raw: Any) -> GatherSpec:
        raw = self.mapping(where, "gather", raw)
        kind = str(raw.get("input", "dtmf"))
        if set(kind.split()) - {"dtmf", "speech"} or not kind.split():
            raise self.fail(where, f"gather.input must be dtmf, speech or 'dtmf speech': {kind!r}")
        hints = raw.get("hints")
        if hints is not None and hints not in self.registry.hints:
            raise self.fail(where, f"unknown hints provider {hints!r}")
        return GatherSpec(
            input=kind,
            timeout=self.number(where, "gather.timeout", raw.get("timeout", 5)),
            num_digits=(
                self.number(where, "gather.num_digits", raw["num_digits"])
                if "num_digits" in raw
                else None
            ),
            finish_on_key=str(raw["finish_on_key"]) if "finish_on_key" in raw else None,
            speech_timeout=str(raw["speech_timeout"]) if "speech_timeout" in raw else None,
            hints=hints,
        )

    def record(self, where: str, raw: Any) -> RecordSpec:
        raw = self.mapping(where, "record", raw)
        return RecordSpec(
            max_length=self.number(where, "record.max_length", raw.get("max_length", 120)),
            timeout=self.number(where, "record.timeout", raw.get("timeout", 5)),
            finish_on_key=str(raw.get("finish_on_key", "#")),
            play_beep=bool(raw.get("play_beep", True)),
        )

    def dial(self, where: str, raw: Any) -> DialSpec:
        raw = self.mapping(where, "dial", raw)
        if "number" not in raw:
            raise self.fail(where, "dial needs a number")
        return DialSpec(
            number=str(raw["number"]),
            timeout=self.number(where, "dial.timeout", raw.get("timeout", 20)),
            caller_id=str(raw["caller_id"]) if raw.get("caller_id") else None,
            time_limit=(
                self.number(where, "dial.time_limit", raw["time_limit"])
                if "time_limit" in raw
                else None
            ),
        )

    def enqueue(self, where: str, raw: Any) -> EnqueueSpec:
        raw = self.mapping(where, "enqueue", raw)
        if not raw.get("workflow_sid"):
            raise self.fail(where, "enqueue needs a workflow_sid (TaskRouter)")
        task = raw.get("task") or {}
        if not isinstance(task, dict):
            raise self.fail(where, "enqueue.task must be a mapping")
        return EnqueueSpec(
            workflow_sid=str(raw["workflow_sid"]),
            task={str(k): str(v) for k, v in task.items()},
            priority=int(raw["priority"]) if "priority" in raw else None,
            timeout=int(raw["timeout"]) if "timeout" in raw else None,
        )

    def mapping(self, where: str, name: str, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise self.fail(where, f"{name} must be a mapping")
        return raw

    def number(self, where: str, name: str, raw: Any) -> int:
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            raise self.fail(where, f"{name} must be a whole number >= 0")
        return raw

    def check_links(self, flow: Flow) -> None:
        if flow.start not in flow.steps:
            raise self.fail("start", f"unknown step {flow.start!r}")
        for step in flow.steps.values():
            where = f"step {step.name}"
            for outcome, transition in step.on.items():
                if transition.target not in flow.steps and transition.target not in (
                    RESERVED_TARGETS
                ):
                    raise self.fail(where, f"on.{outcome}: unknown step {transition.target!r}")
            for entry in step.say + step.reprompt:
                key, _, language = entry.partition("@")
                if key not in flow.prompts:
                    raise self.fail(where, f"unknown prompt {key!r}")
                if language and language not in LANGUAGES:
                    raise self.fail(where, f"prompt {entry!r}: unknown language {language!r}")


def split_prompt(entry: str, language: str) -> tuple[str, str]:
    """``key`` in the caller's language, or ``key@en``: always in the named one (a language
    offer such as "For English, press 9" is said in English to everyone)."""
    key, _, forced = entry.partition("@")
    return key, forced or language


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- running ----------------------------------------------------------------------------------


def _renders_from_file_alone(flow: Flow) -> bool:
    """Whether the flow's start, up to the first step that waits for the caller, runs no
    action nor prepare and asks for no hints: then its TwiML depends on the file and the
    language alone, and a call's first request needs no state (see ``calls.handle_call``)."""
    name = flow.start
    for _ in range(MAX_CHAIN):
        step = flow.steps[name]
        # A waiting step's action runs on the caller's answer, not here.
        if step.kind == "action" or step.prepare is not None:
            return False
        if step.kind == "say":
            name = step.on["default"].target
            if name == HANGUP:
                return True
            continue
        if step.kind == "hangup":
            return True
        return step.kind == "gather" and step.gather is not None and step.gather.hints is None
    return False


class Engine:
    """Renders steps and follows transitions for one flow and its registry."""

    def __init__(self, flow: Flow, registry: Registry) -> None:
        self.flow = flow
        self.registry = registry
        self.static_start = _renders_from_file_alone(flow)

    def start(self, turn: Turn, reply: Input | None = None) -> VoiceResponse:
        """The call's first request; its parameters (``AnsweredBy`` of an outbound call) go
        to the start step's action when the flow starts with one."""
        response = VoiceResponse()
        self._render(turn, self.flow.start, response, reply)
        return response

    def resume(self, turn: Turn, step_name: str, reply: Input) -> VoiceResponse:
        """Twilio posted the result of ``step_name``: decide what follows and render it."""
        step = self.flow.steps.get(step_name)
        if step is None:
            raise FlowRuntimeError(f"{self.flow.source}: no step {step_name!r}")
        outcome = self._outcome(turn, step, reply)
        response = VoiceResponse()
        self._follow(turn, step, outcome, response)
        return response

    def _outcome(self, turn: Turn, step: Step, reply: Input) -> str:
        if step.action is not None:
            return self.registry.actions[step.action](turn, reply)
        if step.kind == "gather":
            if reply.digits:
                return reply.digits
            return "speech" if reply.speech else "silence"
        if step.kind == "record":
            return "recorded" if reply.recording_url else "empty"
        if step.kind == "dial":
            return reply.dial_status or "failed"
        if step.kind == "enqueue":
            return reply.queue_result or "error"
        return "default"

    def _transition(self, step: Step, outcome: str) -> Transition:
        found = step.on.get(outcome)
        keys_pressed = outcome not in ("speech", "silence", "exhausted")
        if found is None and step.kind == "gather" and step.action is None and keys_pressed:
            found = step.on.get("invalid")
        if found is None:
            found = step.on.get("default")
        if found is None:
            raise FlowRuntimeError(
                f"{self.flow.source}: step {step.name}: no transition for outcome {outcome!r}"
            )
        return found

    def _follow(self, turn: Turn, step: Step, outcome: str, response: VoiceResponse) -> None:
        transition = self._transition(step, outcome)
        attempts: dict[str, int] = turn.data.setdefault("attempts", {})
        if transition.target == RETRY:
            used = attempts.get(step.name, 0) + 1
            attempts[step.name] = used
            if used < step.attempts:
                turn.retrying = True
                self._render(turn, step.name, response)
                return
            transition = self._transition(step, "exhausted")
        attempts.pop(step.name, None)
        if "language" in transition.set:
            turn.language = transition.set["language"]
        if transition.target == HANGUP:
            turn.data["step"] = HANGUP
            response.hangup()
            return
        self._render(turn, transition.target, response)

    def _render(
        self, turn: Turn, name: str, response: VoiceResponse, reply: Input | None = None
    ) -> None:
        for _ in range(MAX_CHAIN):
            step = self.flow.steps[name]
            turn.data["step"] = name
            if step.prepare is not None:
                self.registry.prepares[step.prepare](turn)
            if step.kind == "action":
                assert step.action is not None
                outcome = self.registry.actions[step.action](turn, reply or Input())
                reply = None
                transition = self._transition(step, outcome)
                if "language" in transition.set:
                    turn.language = transition.set["language"]
                if transition.target == HANGUP:
                    turn.data["step"] = HANGUP
                    response.hangup()
                    return
                if transition.target == RETRY:
                    raise FlowRuntimeError(f"{self.flow.source}: step {name}: action cannot retry")
                name = transition.target
                continue
            prompts = (step.reprompt if turn.retrying else ()) + step.say
            turn.retrying = False
            if step.kind == "say":
                self._say(turn, prompts, response)
                target = self._transition(step, "default").target
                if target == HANGUP:
                    turn.data["step"] = HANGUP
                    response.hangup()
                    return
                name = target
                continue
            if step.kind == "hangup":
                self._say(turn, prompts, response)
                turn.data["step"] = HANGUP
                response.hangup()
                return
            self._wait(turn, step, prompts, response)
            return
        raise FlowRuntimeError(f"{self.flow.source}: more than {MAX_CHAIN} steps without input")

    def _say(self, turn: Turn, prompts: tuple[str, ...], target: VoiceResponse | Gather) -> None:
        values = turn.values()
        for entry in prompts:
            key, language = split_prompt(entry, turn.language)
            voice = self.flow.voices[language]
            text = self.flow.prompt(key, language, values)
            if text.strip():
                target.say(text, voice=voice.voice, language=voice.say_language)

    def _action_url(self, turn: Turn, step: Step) -> str:
        # A sequence number per rendered step makes every action URL of a call unique, so a
        # delivery key of call + step + seq tells a retried webhook from the step asked again.
        seq = int(turn.data.get("seq", 0)) + 1
        turn.data["seq"] = seq
        return turn.url(self.flow.route, step=step.name, seq=seq)

    def _wait(
        self, turn: Turn, step: Step, prompts: tuple[str, ...], response: VoiceResponse
    ) -> None:
        voice = self.flow.voices[turn.language]
        values = turn.values()
        action = self._action_url(turn, step)
        if step.gather is not None:
            spec = step.gather
            hints = None
            if spec.hints is not None:
                # Twilio takes at most 500 comma-separated hints of at most 100 characters.
                found = [
                    h
                    for h in self.registry.hints[spec.hints](turn)
                    if h and len(h) <= 100 and "," not in h
                ]
                hints = ",".join(list(dict.fromkeys(found))[:500])
            gather = response.gather(
                input=spec.input,
                action=action,
                method="POST",
                timeout=spec.timeout,
                num_digits=spec.num_digits,
                finish_on_key=spec.finish_on_key,
                speech_timeout=spec.speech_timeout if "speech" in spec.input else None,
                language=voice.speech_language if "speech" in spec.input else None,
                hints=hints or None,
            )
            self._say(turn, prompts, gather)
            # No input: Twilio falls through to the next verb; the same action URL hears it
            # as silence.
            response.redirect(action, method="POST")
        elif step.record is not None:
            spec_r = step.record
            self._say(turn, prompts, response)
            response.record(
                action=action,
                method="POST",
                max_length=spec_r.max_length,
                timeout=spec_r.timeout,
                finish_on_key=spec_r.finish_on_key,
                play_beep=spec_r.play_beep,
                recording_status_callback=turn.url(
                    "/twilio/recording-status", flow=self.flow.name, step=step.name
                ),
                recording_status_callback_method="POST",
                recording_status_callback_event="completed",
            )
            # An empty recording does not call the action URL; Twilio goes on to this instead.
            response.redirect(action, method="POST")
        elif step.dial is not None:
            spec_d = step.dial
            self._say(turn, prompts, response)
            number = spec_d.number.format_map(_Values(values, turn.language))
            caller_id = (
                spec_d.caller_id.format_map(_Values(values, turn.language))
                if spec_d.caller_id
                else None
            )
            dial = response.dial(
                action=action,
                method="POST",
                timeout=spec_d.timeout,
                caller_id=caller_id,
                time_limit=spec_d.time_limit,
            )
            dial.number(number)
        elif step.enqueue is not None:
            spec_e = step.enqueue
            self._say(turn, prompts, response)
            task = {
                key: template.format_map(_Values(values, turn.language))
                for key, template in spec_e.task.items()
            }
            enqueue = response.enqueue(
                action=action,
                method="POST",
                workflow_sid=spec_e.workflow_sid.format_map(_Values(values, turn.language)),
            )
            enqueue.task(
                json.dumps(task, ensure_ascii=False, sort_keys=True),
                priority=spec_e.priority,
                timeout=spec_e.timeout,
            )
        else:  # pragma: no cover - the loader admits no other kind here
            raise FlowRuntimeError(f"{self.flow.source}: step {step.name}: cannot wait")
