"""Users, argon2 password hashes and API tokens stored only as SHA-256; the CLI that makes them."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from hotline.accounts.models import ApiToken, User
from hotline.accounts.service import (
    AccountError,
    actor_for,
    create_user,
    issue_token,
    revoke_tokens,
    user_for_token,
)
from hotline.cli import app as cli
from hotline.settings import Settings
from tests.tickets.conftest import open_request
from tickets.models import Role


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "HOTLINE_DATABASE_URL": settings.database_url,
        "HOTLINE_REDIS_URL": settings.redis_url or "",
        "HOTLINE_VAR_DIR": str(settings.var_dir),
        "HOTLINE_TWILIO_AUTH_TOKEN": settings.auth_token,
        "HOTLINE_PUBLIC_BASE_URL": settings.public_base_url,
    }.items():
        monkeypatch.setenv(key, value)


def test_users_and_tokens(session: Session) -> None:
    alice = create_user(session, "alice", "supervisor", password="correct horse battery")
    assert alice.password_hash and alice.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(alice.password_hash, "correct horse battery")
    token = issue_token(session, alice, label="laptop")
    stored = session.exec(select(ApiToken)).one()
    assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_sha256
    found = user_for_token(session, token)
    assert found is not None and found.id == alice.id
    assert actor_for(found).name == "user:alice" and actor_for(found).role == Role.supervisor
    assert user_for_token(session, token + "x") is None
    assert user_for_token(session, "not-a-token") is None
    assert revoke_tokens(session, alice) == 1
    assert user_for_token(session, token) is None


def test_user_rules(session: Session) -> None:
    with pytest.raises(AccountError, match="needs --institution"):
        create_user(session, "bank-staff", "institution")
    with pytest.raises(AccountError, match="no institution"):
        create_user(session, "bank-staff", "institution", institution_id=999999)
    with pytest.raises(AccountError, match="only institution users"):
        create_user(session, "agent", "agent", institution_id=1)
    with pytest.raises(AccountError, match="unknown role"):
        create_user(session, "x", "boss")
    with pytest.raises(AccountError, match="system"):
        create_user(session, "x", "system")
    create_user(session, "agent", "agent")
    with pytest.raises(AccountError, match="already exists"):
        create_user(session, "agent", "supervisor")


def test_cli_creates_a_user_whose_token_opens_the_api(
    cli_env: None, client: TestClient, clean_db: Engine
) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli,
        ["users", "create", "zhao", "--role", "supervisor", "--password-stdin"],
        input="s3cret pass\n",
    )
    assert created.exit_code == 0, created.output
    assert "zhao" in created.output and "supervisor" in created.output
    issued = runner.invoke(cli, ["users", "token", "zhao"])
    assert issued.exit_code == 0, issued.output
    token = issued.output.strip()
    assert (
        client.get("/api/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    with Session(clean_db) as session:
        user = session.exec(select(User).where(User.username == "zhao")).one()
        assert user.password_hash and PasswordHasher().verify(user.password_hash, "s3cret pass")
    refused = runner.invoke(cli, ["users", "create", "zhao", "--role", "agent"])
    assert refused.exit_code == 1 and "already exists" in refused.output
    missing = runner.invoke(cli, ["users", "token", "nobody"])
    assert missing.exit_code == 1


def test_cli_shows_a_ticket_with_its_timeline(cli_env: None, session: Session) -> None:
    ticket = open_request(session)
    session.commit()
    shown = CliRunner().invoke(cli, ["tickets", "show", ticket.number.lower()])
    assert shown.exit_code == 0, shown.output
    assert ticket.number in shown.output and "open" in shown.output
    assert "138****8000" in shown.output and "13800138000" not in shown.output
    unknown = CliRunner().invoke(cli, ["tickets", "show", "CQ2612020999-A"])
    assert unknown.exit_code == 1
