"""Login, logout, sessions, the throttle, CSRF, languages and the security headers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hotline.web import auth
from hotline.web.i18n import CatalogueError, load_catalogue
from hotline.web.models import WebSession
from kb.db import utcnow
from tests.hotline.web.conftest import PASSWORD, Browser, Cast, csrf_of, login, page_csrf


def test_login_sets_a_hardened_cookie_and_sends_each_role_home(
    anonymous: TestClient, cast: Cast
) -> None:
    answer = login(anonymous, "li")
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("hl_session="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "secure" in lowered
    assert anonymous.get("/queue").status_code == 200


@pytest.mark.parametrize(
    ("username", "home"),
    [
        ("zhao", "/supervisor/complaints"),
        ("bank", "/portal"),
        ("root", "/admin/users"),
    ],
)
def test_homes(anonymous: TestClient, cast: Cast, username: str, home: str) -> None:
    assert login(anonymous, username).headers["location"] == home


def test_only_the_hash_of_the_session_id_is_stored(
    anonymous: TestClient, cast: Cast, session: Session
) -> None:
    login(anonymous, "li")
    token = anonymous.cookies.get("hl_session")
    assert token
    rows = session.exec(select(WebSession)).all()
    assert [row.token_sha256 for row in rows] == [auth.digest(token)]
    assert all(token not in (row.token_sha256, row.csrf_token) for row in rows)


@pytest.mark.parametrize(
    ("username", "password"),
    [("li", "wrong"), ("nobody", PASSWORD), ("nopass", ""), ("nopass", PASSWORD)],
)
def test_bad_credentials_are_refused_alike(
    anonymous: TestClient, cast: Cast, username: str, password: str
) -> None:
    answer = login(anonymous, username, password)
    assert answer.status_code == 401
    assert "用户名或密码错误" in answer.text
    assert "hl_session" not in anonymous.cookies


def test_an_inactive_user_cannot_log_in(
    anonymous: TestClient, cast: Cast, session: Session
) -> None:
    from hotline.accounts.service import user_by_name

    user = user_by_name(session, "li")
    user.active = False
    session.add(user)
    session.commit()
    assert login(anonymous, "li").status_code == 401


def test_login_without_its_csrf_token_is_refused(anonymous: TestClient, cast: Cast) -> None:
    anonymous.get("/login")
    answer = anonymous.post(
        "/login",
        data={"username": "li", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "hl_session" not in anonymous.cookies


def test_the_account_is_throttled_after_five_failures(anonymous: TestClient, cast: Cast) -> None:
    for _ in range(auth.MAX_FAILURES_PER_ACCOUNT):
        assert login(anonymous, "li", "wrong").status_code == 401
    refused = login(anonymous, "li")  # even the right password, until the window passes
    assert refused.status_code == 429 and "尝试次数过多" in refused.text
    assert login(anonymous, "wang").status_code == 303  # another account is not locked


def test_the_address_is_throttled_across_accounts(anonymous: TestClient, cast: Cast) -> None:
    for attempt in range(auth.MAX_FAILURES_PER_ADDRESS):
        login(anonymous, f"guess{attempt}", "wrong")
    assert login(anonymous, "wang").status_code == 429


def test_a_success_clears_the_account_counter(anonymous: TestClient, cast: Cast) -> None:
    for _ in range(auth.MAX_FAILURES_PER_ACCOUNT - 1):
        login(anonymous, "li", "wrong")
    assert login(anonymous, "li").status_code == 303
    for _ in range(auth.MAX_FAILURES_PER_ACCOUNT - 1):
        login(anonymous, "li", "wrong")
    assert login(anonymous, "li").status_code == 303


def test_logout_needs_csrf_and_ends_the_session_for_real(browser: Browser, cast: Cast) -> None:
    client = browser("li")
    token = client.cookies.get("hl_session")
    assert client.post("/logout", follow_redirects=False).status_code == 403
    csrf = page_csrf(client, "/queue")
    answer = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"
    # The old cookie, replayed, no longer opens anything.
    client.cookies.set("hl_session", token or "")
    again = client.get("/queue", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_a_session_expires(browser: Browser, cast: Cast, session: Session) -> None:
    client = browser("li")
    row = session.exec(select(WebSession)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.commit()
    answer = client.get("/queue", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fqueue"


def test_idle_time_is_extended_but_never_past_the_absolute_limit(
    cast: Cast, session: Session
) -> None:
    from hotline.accounts.service import user_by_name

    start = utcnow()
    token, row = auth.open_session(session, user_by_name(session, "li"), address="t", now=start)
    session.commit()
    later = start + auth.ABSOLUTE_TIMEOUT - timedelta(minutes=30)
    row.expires_at = later + timedelta(minutes=1)
    session.add(row)
    session.commit()
    found = auth.live_session(session, token, now=later)
    assert found is not None
    assert found[0].expires_at <= start + auth.ABSOLUTE_TIMEOUT
    assert auth.live_session(session, token, now=start + auth.ABSOLUTE_TIMEOUT) is None


def test_pages_need_a_login(anonymous: TestClient) -> None:
    for path in ("/", "/queue", "/portal", "/tickets/X"):
        answer = anonymous.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=")


def test_htmx_requests_are_told_where_to_log_in(anonymous: TestClient) -> None:
    answer = anonymous.get("/queue/rows", headers={"HX-Request": "true"})
    assert answer.status_code == 401 and answer.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil"])
def test_next_never_leaves_the_site(anonymous: TestClient, cast: Cast, target: str) -> None:
    page = anonymous.get("/login", params={"next": target})
    answer = anonymous.post(
        "/login",
        data={
            "username": "li",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": target,
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/queue"


def test_next_brings_the_user_back(anonymous: TestClient, cast: Cast) -> None:
    page = anonymous.get("/login", params={"next": "/queue?state=new"})
    answer = anonymous.post(
        "/login",
        data={
            "username": "li",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/queue?state=new",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/queue?state=new"


def test_chinese_by_default_english_on_request_and_remembered(anonymous: TestClient) -> None:
    assert "登录" in anonymous.get("/login").text
    english = anonymous.get("/login", params={"lang": "en"})
    assert "Log in" in english.text and 'lang="en"' in english.text
    assert "Log in" in anonymous.get("/login").text  # the cookie keeps the choice
    assert "登录" in anonymous.get("/login", params={"lang": "zh"}).text


def test_security_headers_and_no_external_resources(anonymous: TestClient) -> None:
    page = anonymous.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/static/htmx.min.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    htmx = anonymous.get("/static/htmx.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text[:2000]


def test_the_catalogue_has_both_languages_for_every_key() -> None:
    catalogue = load_catalogue()
    assert catalogue and all(set(texts) == {"zh", "en"} for texts in catalogue.values())


def test_a_broken_catalogue_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "messages.yaml"
    broken.write_text("a.key: {zh: 中文}\n", encoding="utf-8")
    with pytest.raises(CatalogueError, match="a.key lacks en"):
        load_catalogue(broken)
