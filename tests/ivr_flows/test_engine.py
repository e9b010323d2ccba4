"""The flow engine on its own: loading and checking flow files, rendering steps, transitions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlmodel import Session

from ivr_flows.calls import FLOW_SOURCES, engines
from ivr_flows.engine import Engine, FlowError, FlowRuntimeError, Input, Registry, Turn, load_flow

HEADER = """
name: t
route: /twilio/t
start: {start}
voices:
  zh: {{voice: Polly.Zhiyu, say_language: cmn-CN, speech_language: cmn-Hans-CN}}
  en: {{voice: Polly.Joanna, say_language: en-US, speech_language: en-US}}
prompts:
  hello: {{zh: 你好, en: Hello}}
  again: {{zh: 再说一次, en: Once more}}
  name: {{zh: "你好{{who}}", en: "Hello {{who}}"}}
steps:
"""

ACTIONS: dict[str, Any] = {
    "understood": lambda turn, reply: "yes" if reply.speech else "unclear",
    "set_who": lambda turn, reply: turn.vars.update(who={"zh": "张三", "en": "Zhang"}) or "done",
}
REGISTRY = Registry(actions=ACTIONS, hints={"words": lambda turn: ["贷款", "律师", "x" * 101]})


def flow_text(steps: str, start: str = "ask") -> str:
    return HEADER.format(start=start) + steps


def load(steps: str, start: str = "ask") -> Engine:
    flow = load_flow("t.yaml", REGISTRY, text=flow_text(steps, start))
    return Engine(flow, REGISTRY)


def turn(engine: Engine, language: str = "zh") -> Turn:
    return Turn(
        session=cast(Session, None),
        flow=engine.flow,
        call_sid="CA1",
        caller="+8613800138000",
        language=language,
        data={},
        base_url="https://h.example",
        now=datetime(2026, 11, 30, 2, tzinfo=UTC),
    )


ASK = """
  ask:
    gather: {input: dtmf speech, num_digits: 1, timeout: 4, speech_timeout: auto, hints: words}
    say: hello
    reprompt: again
    attempts: 2
    action: understood
    on:
      "yes": done
      unclear: retry
      exhausted: done
  done:
    kind: hangup
    say: hello
"""


def test_every_flow_file_loads_and_checks() -> None:
    assert sorted(engines()) == sorted(FLOW_SOURCES) == ["main", "monitor", "revisit"]
    for engine in engines().values():
        for step in engine.flow.steps.values():
            for key in step.say + step.reprompt:
                texts = engine.flow.prompts[key.split("@")[0]]
                assert texts["zh"].strip() and texts["en"].strip()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            "  ask:\n    say: hello\n    next: nowhere\n",
            "t.yaml: step ask: on.default: unknown step 'nowhere'",
        ),
        ("  ask:\n    say: missing\n    next: ask\n", "t.yaml: step ask: unknown prompt 'missing'"),
        ("  ask:\n    action: nope\n    on: {x: ask}\n", "t.yaml: step ask: unknown action 'nope'"),
        ("  ask:\n    sya: hello\n    next: ask\n", "t.yaml: step ask: unknown key(s) sya"),
        (
            "  ask:\n    gather: {input: dtmf}\n    on: {x: retry}\n",
            "t.yaml: step ask: uses retry but has no 'exhausted' transition",
        ),
        (
            "  ask:\n    gather: {input: keys}\n    on: {x: ask}\n",
            "t.yaml: step ask: gather.input must be dtmf, speech or 'dtmf speech'",
        ),
        (
            "  ask:\n    gather: {input: dtmf, hints: nope}\n    on: {x: ask}\n",
            "t.yaml: step ask: unknown hints provider 'nope'",
        ),
        (
            "  ask:\n    gather: {input: dtmf}\n    on: {'9': {next: ask, set: {language: fr}}}\n",
            "t.yaml: step ask: on.9: unknown language 'fr'",
        ),
        ("  ask:\n    say: hello@fr\n    next: ask\n", "t.yaml: step ask: prompt 'hello@fr'"),
    ],
)
def test_bad_flow_files_name_the_file_and_the_step(steps: str, message: str) -> None:
    with pytest.raises(FlowError) as error:
        load(steps)
    assert str(error.value).startswith(message)


def test_a_prompt_missing_a_language_is_named() -> None:
    text = flow_text(ASK).replace("hello: {zh: 你好, en: Hello}", "hello: {zh: 你好}")
    with pytest.raises(FlowError, match="t.yaml: prompt hello: missing en text"):
        load_flow("t.yaml", REGISTRY, text=text)


def test_prompts_must_use_the_same_placeholders() -> None:
    text = flow_text(ASK).replace('en: "Hello {who}"', 'en: "Hello {whom}"')
    with pytest.raises(FlowError, match="prompt name: zh and en use different placeholders"):
        load_flow("t.yaml", REGISTRY, text=text)


def test_unknown_start_and_bad_yaml() -> None:
    with pytest.raises(FlowError, match="t.yaml: start: unknown step 'nowhere'"):
        load(ASK, start="nowhere")
    with pytest.raises(FlowError, match="t.yaml: not valid YAML"):
        load_flow("t.yaml", REGISTRY, text="steps: [unclosed")


def test_a_gather_step_renders_twiml_with_attributes_and_a_fallthrough() -> None:
    engine = load(ASK)
    t = turn(engine)
    root = ET.fromstring(str(engine.start(t)))
    gather, redirect = list(root)
    assert gather.tag == "Gather" and redirect.tag == "Redirect"
    assert gather.attrib == {
        "action": "https://h.example/twilio/t?step=ask&seq=1",
        "method": "POST",
        "input": "dtmf speech",
        "timeout": "4",
        "numDigits": "1",
        "speechTimeout": "auto",
        "language": "cmn-Hans-CN",
        "hints": "贷款,律师",
    }
    assert redirect.text == gather.attrib["action"]
    [say] = list(gather)
    assert say.text == "你好" and say.attrib == {"voice": "Polly.Zhiyu", "language": "cmn-CN"}


def test_retry_reprompts_until_attempts_are_used_then_exhausted() -> None:
    engine = load(ASK)
    t = turn(engine, "en")
    engine.start(t)
    again = ET.fromstring(str(engine.resume(t, "ask", Input())))
    assert [s.text for s in again.iter("Say")] == ["Once more", "Hello"]
    assert t.data["attempts"] == {"ask": 1}
    done = ET.fromstring(str(engine.resume(t, "ask", Input())))
    assert [el.tag for el in done] == ["Say", "Hangup"]
    assert "ask" not in t.data["attempts"]


def test_default_gather_outcomes_keys_invalid_and_language() -> None:
    engine = load(
        """
  ask:
    gather: {input: dtmf, num_digits: 1}
    say: hello
    reprompt: again
    attempts: 3
    on:
      "1": {next: done, set: {language: en}}
      invalid: retry
      silence: retry
      exhausted: done
  done:
    kind: hangup
    say: hello
"""
    )
    t = turn(engine)
    engine.start(t)
    invalid = ET.fromstring(str(engine.resume(t, "ask", Input(digits="7"))))
    assert [s.text for s in invalid.iter("Say")] == ["再说一次", "你好"]
    done = ET.fromstring(str(engine.resume(t, "ask", Input(digits="1"))))
    assert t.language == "en" and [s.text for s in done.iter("Say")] == ["Hello"]


def test_action_and_say_steps_chain_in_one_reply_with_values_per_language() -> None:
    engine = load(
        """
  ask:
    action: set_who
    on: {done: greet}
  greet:
    say: [name, hello@en]
    next: hangup
""",
    )
    t = turn(engine)
    root = ET.fromstring(str(engine.start(t)))
    assert [(el.tag, el.text) for el in root] == [
        ("Say", "你好张三"),
        ("Say", "Hello"),
        ("Hangup", None),
    ]
    assert list(root)[1].attrib["language"] == "en-US"


def test_a_loop_without_input_is_an_error() -> None:
    engine = load("  ask:\n    say: hello\n    next: ask\n")
    with pytest.raises(FlowRuntimeError, match="more than"):
        engine.start(turn(engine))


def test_an_outcome_without_transition_is_an_error() -> None:
    engine = load(
        "  ask:\n    gather: {input: dtmf}\n    action: understood\n    on: {'yes': ask}\n"
    )
    t = turn(engine)
    engine.start(t)
    with pytest.raises(FlowRuntimeError, match="no transition for outcome 'unclear'"):
        engine.resume(t, "ask", Input())


def test_record_dial_and_enqueue_steps() -> None:
    engine = load(
        """
  ask:
    record: {max_length: 30, timeout: 3}
    on: {recorded: dial, empty: hangup}
  dial:
    dial: {number: "{phone}", timeout: 15, caller_id: "+862312345"}
    on: {completed: hangup, default: queue}
  queue:
    enqueue: {workflow_sid: WW1, task: {ticket: "{ticket}"}, timeout: 60}
    on: {bridged: hangup, default: hangup}
"""
    )
    t = turn(engine)
    t.vars.update(phone="+862300000000", ticket="CQ1")
    record = ET.fromstring(str(engine.start(t)))
    assert [el.tag for el in record] == ["Record", "Redirect"]
    assert (
        record[0]
        .attrib["recordingStatusCallback"]
        .startswith("https://h.example/twilio/recording-status?")
    )
    dial = ET.fromstring(str(engine.resume(t, "ask", Input(recording_url="https://r/1"))))
    assert dial[0].tag == "Dial" and dial[0].attrib["callerId"] == "+862312345"
    assert dial[0][0].tag == "Number" and dial[0][0].text == "+862300000000"
    queue = ET.fromstring(str(engine.resume(t, "dial", Input(dial_status="no-answer"))))
    assert queue[0].tag == "Enqueue" and queue[0].attrib["workflowSid"] == "WW1"
    assert queue[0][0].tag == "Task" and queue[0][0].text == '{"ticket": "CQ1"}'


def test_a_greeting_made_of_the_file_alone_is_a_static_start() -> None:
    found = {name: engine.static_start for name, engine in engines().items()}
    # main and monitor greet and wait for a key; revisit starts with an action (AnsweredBy).
    assert found == {"main": True, "monitor": True, "revisit": False}
    plain_wait = """
  greet:
    say: hello
    on: {default: done}
  done:
    gather: {input: dtmf, num_digits: 1, timeout: 4}
    say: hello
    on: {default: greet}
"""
    assert load(plain_wait, start="greet").static_start
    # Hints are computed per call; a prepare or an action runs Python that may read the case.
    assert not load(ASK).static_start
    with_action = """
  who:
    action: set_who
    on: {done: done}
  done:
    kind: hangup
    say: name
"""
    assert not load(with_action, start="who").static_start
