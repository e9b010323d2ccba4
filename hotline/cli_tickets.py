"""``hotline tickets show NUMBER``: a ticket with its timeline, routing decision and SLA clocks."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def _configure() -> None:
    from hotline.settings import SettingsError, load_settings
    from hotline.wiring import configure_domain

    try:
        configure_domain(load_settings())
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def show(
    number: Annotated[str, typer.Argument(help="Ticket number, e.g. CQ2612020001-B")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """One ticket and its timeline (phone number masked)."""
    from kb.db import session_scope
    from tickets.numbers import normalise
    from tickets.repository import ticket_repository
    from tickets.views import ticket_detail

    _configure()
    canonical = normalise(number)
    with session_scope() as session:
        ticket = ticket_repository.by_number(session, canonical) if canonical else None
        if ticket is None:
            typer.echo(f"error: no ticket {number}", err=True)
            raise typer.Exit(1)
        detail = ticket_detail(session, ticket)
    if as_json:
        typer.echo(json.dumps(detail.model_dump(mode="json"), ensure_ascii=False, indent=2))
        return
    lines = [
        f"{detail.number}  {detail.kind}  {detail.state}  (version {detail.version})",
        f"  category   {detail.category or '-'}    district {detail.district or '-'}",
        f"  caller     {detail.caller_phone}    channel {detail.channel}",
        f"  institution {detail.institution or '-'}",
        f"  summary    {detail.summary}",
    ]
    if detail.related_ticket:
        lines.append(f"  about      {detail.related_ticket}")
    if detail.duplicate_of:
        lines.append(f"  duplicate of {detail.duplicate_of}")
    for clock in detail.clocks:
        if clock.due_at is not None:
            lines.append(
                f"  SLA {clock.name:<8} due {clock.due_at:%Y-%m-%d %H:%M}Z  {clock.status}"
            )
    lines.append("  timeline:")
    for event in detail.events:
        move = (
            f"{event.from_state or '-'} -> {event.to_state}"
            if event.from_state != event.to_state
            else (event.to_state or "")
        )
        note = f"  « {event.note} »" if event.note else ""
        lines.append(
            f"    {event.at:%Y-%m-%d %H:%M}Z  {event.action:<16} {move:<28} {event.actor}{note}"
        )
    typer.echo("\n".join(lines))


def register(tickets_app: typer.Typer) -> None:
    tickets_app.command("show")(show)
