"""``hotline call`` and ``hotline sms``: the phone simulator in a terminal (see hotline.simulator).

hotline call [--from NUMBER] [--to hotline|monitor|revisit] [--lang zh|en] [--url BASE]
             [--ticket NUMBER] [--script FILE]
hotline sms --from NUMBER "TEXT"
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import httpx
import typer

from hotline.settings import Settings
from hotline.simulator import (
    CallSimulator,
    ScriptError,
    Signer,
    SimulatorError,
    SmsSimulator,
    Turn,
    await_reply,
    parse_script,
    run_line,
)

DEFAULT_CALLER = "+8613800138000"
INTERACTIVE_HELP = (
    "Type keys (1, 2, 123#) to press them, any other text to say it, an empty line for "
    "silence, /hangup to hang up."
)


def _settings() -> Settings:
    from hotline.cli import _settings as load

    return load()


def _signer(settings: Settings, url: str | None) -> Signer:
    # Signed for the public URL, as Twilio signs; sent to --url when given (the app's own
    # address when the public one is a proxy's).
    return Signer(settings.auth_token, public_base=settings.public_base_url, send_base=url)


def _print_turn(turn: Turn) -> None:
    for said in turn.said:
        typer.echo(f"HOTLINE: {said.text}")
    for note in turn.notes:
        typer.echo(f"  [{note}]")


def _interactive(call: CallSimulator, turn: Turn) -> None:
    typer.echo(INTERACTIVE_HELP)
    while not turn.ended and call.waiting is not None:
        waiting = call.waiting
        if waiting.input == "dial":
            answer = typer.prompt(f"({waiting.number} rings: [a]nswer, [n]o answer, [b]usy)", "n")
            outcome = {"a": "completed", "b": "busy"}.get(answer.strip()[:1].lower(), "no-answer")
            turn = call.dial(outcome)
        elif waiting.input == "queue":
            answer = typer.prompt("(agent queue: [b]ridged to an agent, [l]eave)", "l")
            turn = call.queue("bridged" if answer.strip().lower().startswith("b") else "leave")
        elif waiting.input == "record":
            said = typer.prompt("(recording) your message", "", show_default=False)
            turn = call.hangup() if said.strip() == "/hangup" else call.record(said)
        else:
            typed = typer.prompt(f"({waiting.input})", "", show_default=False).strip()
            if typed == "/hangup":
                turn = call.hangup()
            elif not typed:
                turn = call.silence()
            elif waiting.takes_keys and all(ch in "0123456789*#" for ch in typed):
                turn = call.press(typed)
            elif waiting.takes_speech:
                turn = call.say(typed)
            else:
                typer.echo("  keys only here (0-9, *, #)")
                continue
        _print_turn(turn)


def call(
    caller: Annotated[str, typer.Option("--from", help="The calling number")] = DEFAULT_CALLER,
    to: Annotated[str, typer.Option(help="hotline, monitor or revisit")] = "hotline",
    lang: Annotated[str, typer.Option(help="zh or en (presses the English key)")] = "zh",
    url: Annotated[str | None, typer.Option(help="Send to this base URL")] = None,
    ticket: Annotated[str | None, typer.Option(help="The ticket of a revisit call")] = None,
    script: Annotated[
        Path | None, typer.Option(help="Run this script, print the transcript")
    ] = None,
) -> None:
    """Call the hotline from the terminal: hear what it says, press keys, speak by typing."""
    settings = _settings()
    if to not in ("hotline", "monitor", "revisit"):
        raise typer.BadParameter("hotline, monitor or revisit", param_hint="--to")
    if lang not in ("zh", "en"):
        raise typer.BadParameter("zh or en", param_hint="--lang")
    if to == "revisit" and not ticket:
        raise typer.BadParameter("a revisit call needs --ticket", param_hint="--ticket")
    signer = _signer(settings, url)
    if to == "revisit":
        simulator = CallSimulator(
            signer,
            caller=caller,
            to=settings.main_number,
            path=f"/twilio/revisit?ticket={ticket}",
            # As the Twilio adapter places it: the status callback names the ticket too.
            status_path=f"/twilio/call-status?ticket={ticket}",
            direction="outbound-api",
            answered_by="human",
        )
    else:
        simulator = CallSimulator(
            signer,
            caller=caller,
            to=settings.main_number if to == "hotline" else settings.monitor_number,
            path="/twilio/voice" if to == "hotline" else "/twilio/monitor",
        )
    lines = []
    if script is not None:
        try:
            lines = parse_script(script.read_text(encoding="utf-8"))
        except (OSError, ScriptError) as exc:
            typer.echo(f"error: {script}: {exc}", err=True)
            raise typer.Exit(2) from None
    try:
        turn = simulator.start(language=lang)
        _print_turn(turn)
        if script is None:
            try:
                _interactive(simulator, turn)
            except (typer.Abort, EOFError, KeyboardInterrupt):
                # Ctrl-D / Ctrl-C: the caller hung up, which the hotline must hear about.
                if not simulator.ended:
                    _print_turn(simulator.hangup())
            return
        for line in lines:
            if line.verb != "expect":
                typer.echo(f"CALLER: [{line.verb}{' ' + line.argument if line.argument else ''}]")
            turn = run_line(simulator, line, turn)
            if line.verb != "expect":
                _print_turn(turn)
        if not simulator.ended:
            _print_turn(simulator.hangup())
    except ScriptError as exc:
        if not simulator.ended:
            simulator.hangup()
        typer.echo(f"error: {script}: {exc}", err=True)
        raise typer.Exit(1) from None
    except (SimulatorError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def sms(
    text: Annotated[str, typer.Argument(help="The message")],
    sender: Annotated[str, typer.Option("--from", help="The sending number")] = DEFAULT_CALLER,
    url: Annotated[str | None, typer.Option(help="Send to this base URL")] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for a worker to answer the text")
    ] = 15.0,
) -> None:
    """Text the hotline from the terminal and print its reply.

    The webhook only takes the text; a worker (``hotline worker``, started by ``make run``)
    answers it, and the offline telephony adapter leaves the reply in the database this
    command reads (the one the settings name)."""
    from hotline.wiring import configure_domain
    from ivr_flows.sms import reply_to
    from kb.db import session_scope

    settings = _settings()
    simulator = SmsSimulator(_signer(settings, url), sender=sender, to=settings.main_number)
    try:
        sent = simulator.send(text)
    except (SimulatorError, httpx.HTTPError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"YOU: {text}")
    for said in sent.immediate:
        typer.echo(f"HOTLINE: {said}")
    if sent.immediate:
        return
    configure_domain(settings)

    def read_reply(sid: str) -> str | None:
        with session_scope() as session:
            return reply_to(session, sid)

    reply = await_reply(read_reply, sent.message_sid, timeout=wait)
    if reply is None:
        typer.echo(
            f"(no answer within {wait:g} s: is a worker running? `hotline worker`)", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"HOTLINE: {reply}" if reply else "HOTLINE: (no reply)")


def register(app: typer.Typer) -> None:
    app.command("call")(call)
    app.command("sms")(sms)
