"""/supervisor/notices: who may publish, the CSRF check, the audience count before sending
(opted-out numbers left out), and the progress of a notice a real worker process sent, with
delivery outcomes from Twilio's signed status callbacks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from hotline.public.models import Notice
from hotline.settings import Settings
from kb.articles import import_articles
from kb.subscriptions import subscribe
from tests.conftest import TwilioSigner
from tests.hotline.public.test_notices import _worker_env
from tests.hotline.web.conftest import Browser, Cast, page_csrf
from tickets.models import Firm, OutboundMessage

SLUG = "loan-interest-subsidy-2026"
EXPIRED = "testing-voucher-2025"
PAGES = (
    "/supervisor/notices",
    f"/supervisor/notices/audience?article={SLUG}",
    f"/supervisor/notices/new?article={SLUG}",
)


def _phone(n: int) -> str:
    return f"+86137{n:08d}"


@pytest.fixture
def audience(session: Session, cast: Cast) -> list[str]:
    """Four financing subscribers (one in Wanzhou only, one who sent STOP) and one of legal."""
    import_articles(session)
    phones = [_phone(n) for n in range(4)]
    for phone in phones[:3]:
        subscribe(session, phone, ["financing"])
    subscribe(session, phones[3], ["financing"], ["wanzhou"])
    subscribe(session, _phone(9), ["legal"])
    session.add(Firm(phone=phones[1], sms_opted_out=True))
    session.commit()
    return phones


def _notices(engine: Engine) -> list[Notice]:
    with Session(engine) as session:
        return list(session.exec(select(Notice)).all())


def _counts(html: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-count="(\w+)">(\d+)<', html)}


def test_who_may_see_and_publish(
    browser: Browser, anonymous: TestClient, clean_db: Engine, audience: list[str]
) -> None:
    for path in PAGES:
        away = anonymous.get(path, follow_redirects=False)
        assert away.status_code == 303 and away.headers["location"].startswith("/login")
    for username in ("li", "bank"):  # an agent, an institution
        client = browser(username)
        for path in (*PAGES, "/supervisor/notices/1", "/supervisor/notices/1/progress"):
            assert client.get(path).status_code == 403, (username, path)
        csrf = page_csrf(client, "/queue" if username == "li" else "/portal")
        refused = client.post(
            "/supervisor/notices",
            data={"article": SLUG, "csrf_token": csrf},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "/supervisor/notices" not in client.get("/").text  # no nav link either
    assert _notices(clean_db) == []
    for username in ("zhao", "root"):  # a supervisor, an admin
        client = browser(username)
        page = client.get("/supervisor/notices")
        assert page.status_code == 200 and 'href="/supervisor/notices"' in page.text
        for path in PAGES[1:]:
            assert client.get(path).status_code == 200, (username, path)


def test_publishing_needs_the_session_s_csrf_token(
    browser: Browser, clean_db: Engine, audience: list[str]
) -> None:
    client = browser("zhao")
    for data in ({"article": SLUG}, {"article": SLUG, "csrf_token": "forged"}):
        answer = client.post("/supervisor/notices", data=data, follow_redirects=False)
        assert answer.status_code == 403
        assert "表单已失效" in answer.text
    assert _notices(clean_db) == []


def test_the_audience_is_counted_before_sending(
    browser: Browser, clean_db: Engine, audience: list[str]
) -> None:
    client = browser("zhao")
    # The article's own audience (financing, whole city): four subscribed, one opted out.
    count = client.get("/supervisor/notices/audience", params={"article": SLUG})
    assert 'data-reachable="3"' in count.text
    assert "订阅 4 个，其中 1 个已退订全部短信" in count.text
    # Narrowed to Yubei: the Wanzhou-only subscriber drops out.
    narrowed = client.get(
        "/supervisor/notices/audience",
        params={"article": SLUG, "district": "yubei", "lang": "en"},
    )
    assert 'data-reachable="2"' in narrowed.text and "Will reach 2 number(s)" in narrowed.text
    # Widened to legal as well.
    wider = client.get(
        "/supervisor/notices/audience",
        params=[("article", SLUG), ("category", "financing"), ("category", "legal")],
    )
    assert 'data-reachable="4"' in wider.text
    confirm = client.get("/supervisor/notices/new", params={"article": SLUG, "district": "yubei"})
    assert confirm.status_code == 200
    assert 'data-reachable="2"' in confirm.text
    assert "【中小企业服务热线】" in confirm.text and "SME hotline:" in confirm.text
    assert 'name="district" value="yubei"' in confirm.text
    assert _notices(clean_db) == []  # looking sends nothing
    # Clear refusals, in the page's language, for what cannot be sent.
    expired = client.get("/supervisor/notices/new", params={"article": EXPIRED, "lang": "en"})
    assert expired.status_code == 422 and "expired on 2025-12-31" in expired.text
    unknown = client.get(
        "/supervisor/notices/new", params={"article": SLUG, "district": "atlantis", "lang": "zh"}
    )
    assert unknown.status_code == 422 and "未知的区县：atlantis" in unknown.text
    hostile = client.get(
        "/supervisor/notices/audience", params={"article": "<script>alert(1)</script>"}
    )
    assert "<script>alert" not in hostile.text and "&lt;script&gt;" in hostile.text


def test_publish_then_follow_the_progress_of_a_real_worker_run(
    browser: Browser,
    anonymous: TestClient,
    twilio: TwilioSigner,
    clean_db: Engine,
    settings: Settings,
    redis_conn: redis.Redis,
    audience: list[str],
) -> None:
    client = browser("zhao")
    csrf = page_csrf(client, f"/supervisor/notices/new?article={SLUG}")
    answer = client.post(
        "/supervisor/notices",
        data={"article": SLUG, "category": "financing", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    (notice,) = _notices(clean_db)
    assert answer.headers["location"] == f"/supervisor/notices/{notice.id}"
    assert notice.created_by == "user:zhao" and notice.recipients == 4
    assert redis_conn.llen("rq:queue:low") == 1  # queued for the workers

    before = client.get(f"/supervisor/notices/{notice.id}")
    assert before.status_code == 200
    assert _counts(before.text) == {
        "total": 4,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "suppressed": 0,
        "pending": 4,
    }
    assert 'hx-trigger="every 2s"' in before.text  # htmx keeps asking while it sends
    assert f'href="/supervisor/notices/{notice.id}"' in before.text  # and a plain reload link

    worker = subprocess.run(
        [sys.executable, "-m", "hotline", "worker", "--burst"],
        env=_worker_env(settings),
        timeout=120,
        capture_output=True,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]

    # Twilio gives each message a SID and calls back with its fate; the offline adapter leaves
    # the SID to us.
    with Session(clean_db, expire_on_commit=False) as session:
        sent = session.exec(
            select(OutboundMessage)
            .where(OutboundMessage.purpose == "notice", OutboundMessage.status != "suppressed")
            .order_by(col(OutboundMessage.to_number))
        ).all()
        assert [m.to_number for m in sent] == [audience[0], audience[2], audience[3]]
        for i, message in enumerate(sent):
            message.provider_sid = f"SM{i:032d}"
            session.add(message)
        session.commit()
    for sid, status in (
        (f"SM{0:032d}", "sent"),
        (f"SM{0:032d}", "delivered"),
        (f"SM{1:032d}", "undelivered"),
    ):
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
        assert twilio.post(anonymous, "/twilio/message-status", params).status_code == 200

    fragment = client.get(
        f"/supervisor/notices/{notice.id}/progress", headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 200
    assert _counts(fragment.text) == {
        "total": 4,
        "sent": 3,
        "delivered": 1,
        "failed": 1,
        "suppressed": 1,
        "pending": 0,
    }
    assert "hx-trigger" not in fragment.text and 'data-done="true"' in fragment.text
    assert "<html" not in fragment.text  # a fragment, not a page
    listing = client.get("/supervisor/notices", params={"lang": "en"})
    assert "Notice on 2026 interest subsidies" in listing.text
    assert f'href="/supervisor/notices/{notice.id}"' in listing.text and "Done" in listing.text
    assert client.get("/supervisor/notices/999").status_code == 404
