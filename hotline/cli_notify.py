"""``hotline notify ARTICLE_SLUG``: push a kb article to the firms subscribed to it, as SMS sent
by the RQ workers, with a progress bar. The workers resume an interrupted send by themselves
(``hotline.public.notices.resume_stranded``); ``hotline notify --resume`` re-queues unfinished
notices at once, for an operator who will not wait for that."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer


def notify(
    slug: Annotated[str | None, typer.Argument(help="The article's slug")] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Audience category (repeatable)")
    ] = None,
    district: Annotated[
        list[str] | None, typer.Option("--district", help="Audience district (repeatable)")
    ] = None,
    rate: Annotated[float, typer.Option(help="Messages per second per worker")] = 10.0,
    batch: Annotated[int, typer.Option(help="Messages per RQ job")] = 50,
    wait: Annotated[bool, typer.Option(help="Show progress until every SMS is handled")] = True,
    timeout: Annotated[float, typer.Option(help="Stop waiting after this many seconds")] = 600,
    resume: Annotated[
        bool, typer.Option("--resume", help="Re-queue every notice with pending deliveries")
    ] = False,
    actor: Annotated[str, typer.Option(help="Who publishes (recorded)")] = "cli:notify",
) -> None:
    """Publish ARTICLE_SLUG to its audience (default: the article's categories and districts)."""
    from hotline.public import notices
    from hotline.queue import connect, resolve_redis_url
    from hotline.settings import SettingsError, load_settings
    from hotline.wiring import configure_domain
    from kb.db import session_scope
    from kb.service import UnknownValue, catalogue_service
    from tickets.models import Role
    from tickets.service import Actor

    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_domain(settings)
    connection = connect(resolve_redis_url(settings))
    if resume:
        with session_scope() as session:
            pending = notices.unfinished(session)
        for notice_id in pending:
            notices.enqueue(connection, notice_id)
        typer.echo(f"re-queued {len(pending)} notice(s): {pending}")
        return
    if slug is None:
        typer.echo("error: give an ARTICLE_SLUG (or --resume)", err=True)
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            categories = [
                catalogue_service.require_category(session, c).key for c in category or []
            ]
            districts = [
                catalogue_service.require_district(session, d).code for d in district or []
            ]
            notice = notices.publish(
                session,
                slug,
                actor=Actor(actor, Role.system),
                today=datetime.now(settings.tz).date(),
                categories=categories,
                districts=districts,
                batch_size=batch,
                rate_per_second=rate,
            )
    except (UnknownValue, notices.NoticeError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    assert notice.id is not None
    typer.echo(f"notice {notice.id}: {notice.recipients} recipient(s)")
    if notice.recipients == 0:
        return
    notices.enqueue(connection, notice.id)
    if not wait:
        return
    deadline = time.monotonic() + timeout
    with typer.progressbar(length=notice.recipients, label="sending") as bar:
        handled = 0
        while True:
            with session_scope() as session:
                state = notices.progress(session, notice.id)
            now_handled = state.total - state.pending
            bar.update(now_handled - handled)
            handled = now_handled
            if state.done or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    typer.echo(
        f"sent {state.sent}, suppressed (opted out) {state.suppressed}, pending {state.pending}; "
        f"delivered {state.delivered}, failed {state.failed}"
    )
    if not state.done:
        typer.echo("still pending: is a worker running? (hotline worker)", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("notify")(notify)
