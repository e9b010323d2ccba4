"""/admin/users: only admins; creating users with argon2 passwords; deactivation ends sessions."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from hotline.accounts.models import User
from tests.hotline.web.conftest import Browser, Cast, login, page_csrf


@pytest.mark.parametrize(
    ("username", "status"), [("root", 200), ("zhao", 403), ("li", 403), ("bank", 403)]
)
def test_only_admins(browser: Browser, cast: Cast, username: str, status: int) -> None:
    assert browser(username).get("/admin/users").status_code == status


def test_non_admins_cannot_create_users(browser: Browser, cast: Cast) -> None:
    client = browser("zhao")
    csrf = page_csrf(client, "/queue")
    answer = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "x", "role": "admin", "password": "p" * 12},
    )
    assert answer.status_code == 403


def test_an_admin_creates_a_user_who_can_log_in(
    browser: Browser, cast: Cast, session: Session, anonymous
) -> None:  # type: ignore[no-untyped-def]
    client = browser("root")
    csrf = page_csrf(client, "/admin/users")
    short = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "new", "role": "agent", "password": "short"},
    )
    assert short.status_code == 422
    bound = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "new", "role": "institution", "password": "p" * 12},
    )
    assert bound.status_code == 422 and "--institution" in bound.text
    made = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "new", "role": "agent", "password": "p" * 12},
        follow_redirects=False,
    )
    assert made.status_code == 303
    stored = session.exec(select(User).where(User.username == "new")).one()
    assert stored.password_hash and stored.password_hash.startswith("$argon2id$")
    session.rollback()
    assert login(anonymous, "new", "p" * 12).status_code == 303


def test_deactivating_ends_the_users_sessions(
    browser: Browser, cast: Cast, session: Session
) -> None:
    agent = browser("li")
    assert agent.get("/queue").status_code == 200
    li_id = session.exec(select(User.id).where(User.username == "li")).one()
    session.rollback()
    admin = browser("root")
    csrf = page_csrf(admin, "/admin/users")
    answer = admin.post(
        f"/admin/users/{li_id}/active",
        data={"csrf_token": csrf, "active": ""},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    gone = agent.get("/queue", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
