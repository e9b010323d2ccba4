"""``hotline users create`` and ``hotline users token``: people who use the JSON API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

users_app = typer.Typer(help="Users and their API tokens.", no_args_is_help=True)


def _configure() -> None:
    from hotline.settings import SettingsError, load_settings
    from hotline.wiring import configure_domain

    try:
        configure_domain(load_settings())
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@users_app.command("create")
def create(
    username: str,
    role: Annotated[str, typer.Option(help="agent, supervisor, institution or admin")],
    institution: Annotated[
        int | None, typer.Option(help="Institution id (institution users only)")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a password from standard input")
    ] = False,
) -> None:
    """Create a user (the password, if any, is stored as an argon2 hash)."""
    from hotline.accounts.service import AccountError, create_user
    from kb.db import session_scope

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            typer.echo("error: empty password on standard input", err=True)
            raise typer.Exit(1)
    _configure()
    try:
        with session_scope() as session:
            user = create_user(
                session, username, role, institution_id=institution, password=password
            )
            summary = f"user {user.username} created, role {user.role}"
            if user.institution_id is not None:
                summary += f", institution {user.institution_id}"
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(summary)


@users_app.command("token")
def token(
    username: str,
    label: Annotated[str, typer.Option(help="What the token is for")] = "",
) -> None:
    """Issue an API bearer token for the user. It is printed once and never stored in clear."""
    from hotline.accounts.service import AccountError, issue_token, user_by_name
    from kb.db import session_scope

    _configure()
    try:
        with session_scope() as session:
            issued = issue_token(session, user_by_name(session, username), label=label)
    except AccountError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(issued)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
