"""Fixtures for the web pages: users of every role with passwords, and browsers-as-clients that
log in through the real form (CSRF included) over https, as the Secure cookie requires."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from fastapi.testclient import TestClient
from sqlmodel import Session

from hotline.accounts.service import create_user
from kb.models import Institution
from tests.tickets.conftest import service_institutions

PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Cast:
    bank: Institution
    other_bank: Institution


@pytest.fixture
def cast(session: Session) -> Cast:
    bank, other_bank = service_institutions(session, "financing")[:2]
    for username, role, institution in (
        ("li", "agent", None),
        ("wang", "agent", None),
        ("zhao", "supervisor", None),
        ("root", "admin", None),
        ("bank", "institution", bank.id),
        ("other", "institution", other_bank.id),
    ):
        create_user(session, username, role, institution_id=institution, password=PASSWORD)
    create_user(session, "nopass", "agent")
    session.commit()
    return Cast(bank=bank, other_bank=other_bank)


@pytest.fixture(autouse=True)
def _forget_failed_logins(redis_url: str) -> Iterator[None]:
    yield
    conn = redis.Redis.from_url(redis_url)
    for key in conn.scan_iter("hotline:login:*"):
        conn.delete(key)
    conn.close()


def csrf_of(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no csrf_token field on the page"
    return found.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


Browser = Callable[[str], TestClient]


@pytest.fixture
def browser(app) -> Iterator[Browser]:  # type: ignore[no-untyped-def]
    """``browser("li")``: a client of its own (its own cookies), logged in as that user."""
    opened: list[TestClient] = []

    def open_as(username: str) -> TestClient:
        client = TestClient(app, base_url="https://testserver")
        client.__enter__()
        opened.append(client)
        answer = login(client, username)
        assert answer.status_code == 303, answer.text
        return client

    yield open_as
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def anonymous(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url="https://testserver") as client:
        yield client


def page_csrf(client: TestClient, path: str = "/") -> str:
    """The session's CSRF token, as a page carries it."""
    answer = client.get(path)
    return csrf_of(answer.text)
