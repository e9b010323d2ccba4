"""``hotline route``: who would serve a need, and why, from the command line."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from routing.decision import RoutingDecision


def register(app: typer.Typer) -> None:
    """Add the ``route`` command to the ``hotline`` app."""
    app.command("route")(route)


def route(
    category: Annotated[str, typer.Option(help="Category key, e.g. financing")],
    district: Annotated[
        str | None, typer.Option(help="District code or name, e.g. jiangbei or 江北区")
    ] = None,
    lat: Annotated[float | None, typer.Option(help="The firm's latitude")] = None,
    lon: Annotated[float | None, typer.Option(help="The firm's longitude")] = None,
    cluster: Annotated[str | None, typer.Option(help="Industrial cluster code or name")] = None,
    exclude: Annotated[
        list[int] | None, typer.Option(help="Institution id that declined (repeatable)")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="Only institutions open then: ISO datetime, naive = local")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
) -> None:
    """Choose the institution that should serve a need near a place, with the reasons."""
    # Imported here: hotline.cli imports this module to register the command.
    from hotline.cli import _fail, _settings
    from hotline.wiring import configure_domain
    from kb.db import session_scope
    from kb.service import UnknownValue
    from routing.match import NoMunicipalPlatform, match_named

    if (lat is None) != (lon is None):
        raise _fail("give both --lat and --lon, or neither", 2)
    if district is None and lat is None and cluster is None:
        raise _fail("give --district, or --lat and --lon (or --cluster)", 2)
    when: datetime | None = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise _fail(f"--at {at!r} is not an ISO datetime (e.g. 2026-12-01T10:30)", 2) from None

    settings = _settings()
    configure_domain(settings)
    try:
        with session_scope() as session:
            decision = match_named(
                session,
                category=category,
                district=district,
                lat=lat,
                lon=lon,
                cluster=cluster,
                exclude=exclude or (),
                at=when,
                timezone=settings.timezone,
            )
    except UnknownValue as exc:
        raise _fail(str(exc), 2) from None
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    except NoMunicipalPlatform as exc:
        raise _fail(str(exc), 1) from None
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), ensure_ascii=False))
        return
    typer.echo(describe(decision))


def describe(decision: RoutingDecision) -> str:
    """The decision for a person: the choice, every reason in both languages, the next best."""

    def km(value: float | None) -> str:
        return "distance unknown" if value is None else f"{value:.1f} km"

    lines = [
        f"{decision.institution_code} (id {decision.institution_id}) {decision.name_en}",
        f"  {decision.name_zh}",
        f"  {decision.tier} · {km(decision.distance_km)} · score {decision.score:.2f}",
        "why:",
        *(f"  - {reason.en} / {reason.zh}" for reason in decision.reasons),
    ]
    if decision.candidates:
        lines.append("next best:")
        lines.extend(
            f"  {rank}. {c.code} (id {c.institution_id}) {c.name_en} · {c.tier} · "
            f"{km(c.distance_km)} · score {c.score:.2f}"
            for rank, c in enumerate(decision.candidates, 1)
        )
    return "\n".join(lines)
