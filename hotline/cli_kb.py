"""``hotline kb import [DIR]`` and ``hotline kb search``: the knowledge base's articles."""

from __future__ import annotations

from pathlib import Path
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


def import_command(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder of *.md articles (default: kb/data/articles)")
    ] = None,
) -> None:
    """Import policy notices and FAQs from Markdown files with front matter: all or nothing."""
    from kb.articles import import_articles
    from kb.db import session_scope
    from kb.loader import CatalogueLoadError

    _configure()
    try:
        with session_scope() as session:
            report = import_articles(session, directory)
    except CatalogueLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"knowledge base imported: {report.summary()}")


def search_command(
    query: Annotated[str, typer.Argument(help="Words to look for, Chinese or English")] = "",
    category: Annotated[str | None, typer.Option(help="Only this category")] = None,
) -> None:
    """Search the knowledge base."""
    from datetime import datetime

    from hotline.settings import load_settings
    from kb.articles import search
    from kb.db import session_scope

    _configure()
    today = datetime.now(load_settings().tz).date()
    with session_scope() as session:
        found = search(session, query or None, category=category, today=today)
    for article in found:
        flag = " [expired]" if article.expired else ""
        typer.echo(f"{article.slug}  {article.title_zh} / {article.title_en}{flag}")


def register(kb_app: typer.Typer) -> None:
    kb_app.command("import")(import_command)
    kb_app.command("search")(search_command)
