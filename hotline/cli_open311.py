"""``hotline open311 keys create NAME`` and ``hotline open311 keys revoke NAME``."""

from __future__ import annotations

import typer

open311_app = typer.Typer(help="Open311 GeoReport v2 access.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for Open311 clients.", no_args_is_help=True)
open311_app.add_typer(keys_app, name="keys")


def _configure() -> None:
    from hotline.settings import SettingsError, load_settings
    from hotline.wiring import configure_domain

    try:
        configure_domain(load_settings())
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("create")
def create(name: str) -> None:
    """Issue a key for NAME and print it (shown once: only its SHA-256 is stored)."""
    from hotline.open311_domain import create_key
    from kb.db import session_scope

    _configure()
    try:
        with session_scope() as session:
            key = create_key(session, name)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)


@keys_app.command("revoke")
def revoke(name: str) -> None:
    """Revoke NAME's key: requests with it are refused from now on."""
    from hotline.open311_domain import revoke_key
    from kb.db import session_scope

    _configure()
    with session_scope() as session:
        revoked = revoke_key(session, name)
    if not revoked:
        typer.echo(f"error: no active key named {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(open311_app, name="open311")
