"""Public pages: the knowledge base, the directory with an institution's five publics and its
published performance, and the one-time evaluation page."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hotline.public.pages import (
    MIN_PUBLISHED_CASES,
    PERFORMANCE_CACHE_KEY,
    PERFORMANCE_TTL,
    published_performance,
)
from kb.articles import import_articles
from kb.db import utcnow
from kb.models import Institution, Recognition, Tier
from kb.service import catalogue_service
from tickets.models import Channel, Revisit, Ticket, TicketState
from tickets.service import ticket_service


def _institution(engine: Engine) -> Institution:
    with Session(engine) as session:
        return session.exec(
            select(Institution).where(Institution.tier == Tier.institution).limit(1)
        ).one()


def test_kb_page_searches_in_both_languages(client: TestClient, clean_db: Engine) -> None:
    with Session(clean_db) as session:
        import_articles(session)
        session.commit()
    page = client.get("/kb")
    assert page.status_code == 200
    assert "政策与问答" in page.text and "小微企业贷款贴息申报通知" in page.text
    assert "<script" not in page.text.split("<body")[1]  # no script needed in the page body
    found = client.get("/kb", params={"q": "银河培训"})
    assert "2026年银河培训工程报名通知" in found.text
    assert "小微企业贷款贴息申报通知" not in found.text
    english = client.get("/kb", params={"q": "innovation voucher", "lang": "en"})
    assert "2025 innovation vouchers for testing and inspection" in english.text
    assert "Expired" in english.text
    legal = client.get("/kb", params={"category": "legal", "lang": "en"})
    assert "How private firms can protect their rights" in legal.text
    assert "Yinhe" not in legal.text
    # Hostile input is shown as text.
    hostile = client.get("/kb", params={"q": "<b>x</b>"})
    assert "<b>x</b>" not in hostile.text and "&lt;b&gt;x&lt;/b&gt;" in hostile.text


def test_directory_filters(client: TestClient, clean_db: Engine) -> None:
    everything = client.get("/directory")
    assert everything.status_code == 200 and "服务机构名录" in everything.text
    with Session(clean_db) as session:
        active = session.exec(select(Institution).where(Institution.active)).all()
        legal_yubei = catalogue_service.repository.institutions(
            session, category="legal", district="yubei", active_only=True
        )
    key = [i for i in active if i.recognition == Recognition.key]
    assert legal_yubei, "the demo catalogue has legal institutions in Yubei"
    page = client.get("/directory", params={"category": "legal", "district": "yubei"})
    for institution in legal_yubei:
        assert f'href="/directory/{institution.code}"' in page.text
    assert page.text.count('href="/directory/') == len(legal_yubei)
    assert key, "the demo catalogue has key institutions"
    recognised = client.get("/directory", params={"recognition": "key"})
    assert recognised.text.count('href="/directory/') == len(key)


def test_institution_page_hides_performance_below_the_minimum(
    client: TestClient, clean_db: Engine, redis_conn: redis.Redis
) -> None:
    institution = _institution(clean_db)
    page = client.get(f"/directory/{institution.code}")
    assert page.status_code == 200
    assert institution.name_zh in page.text and "五公开" in page.text
    assert institution.phone in page.text
    assert f"案件数少于 {MIN_PUBLISHED_CASES} 件" in page.text
    assert client.get("/directory/nope").status_code == 404

    now = utcnow()
    with Session(clean_db) as session:
        for n in range(MIN_PUBLISHED_CASES):
            session.add(
                Ticket(
                    number=f"CQ{n:010d}-A",
                    channel=Channel.web,
                    state=TicketState.closed,
                    category="legal",
                    institution_id=institution.id,
                    created_at=now - timedelta(days=30),
                    dispatched_at=now - timedelta(days=30),
                    resolved_at=now - timedelta(days=29),
                    revisit_outcome="met",
                    satisfaction=5,
                )
            )
        session.commit()
    # The figures are cached for every institution, for a few minutes: the new cases do not
    # show yet, and no page computes them again meanwhile.
    cached = client.get(f"/directory/{institution.code}", params={"lang": "en"})
    assert "Fewer than" in cached.text
    ttl = redis_conn.pttl(PERFORMANCE_CACHE_KEY)
    assert 0 < ttl <= PERFORMANCE_TTL.total_seconds() * 1000
    # Once the cache lapses (Redis expires the key), the page shows the new figures.
    redis_conn.pexpire(PERFORMANCE_CACHE_KEY, 1)
    while redis_conn.exists(PERFORMANCE_CACHE_KEY):
        time.sleep(0.005)
    english = client.get(f"/directory/{institution.code}", params={"lang": "en"})
    assert "Performance over the last 12 months" in english.text
    assert "Fewer than" not in english.text
    assert f"<dd>{MIN_PUBLISHED_CASES}</dd>" in english.text
    assert "<dd>100%</dd>" in english.text  # satisfaction: every case scored 5
    # every case was revisited and answered "met": ten revisits, a revisit rate of 100%
    assert f"<dt>Revisits completed</dt><dd>{MIN_PUBLISHED_CASES}</dd>" in english.text
    assert "<dt>Revisit rate</dt>\n  <dd>100%</dd>" in english.text
    cached_again = redis_conn.get(PERFORMANCE_CACHE_KEY)
    assert cached_again is not None
    assert json.loads(cached_again)[str(institution.id)]["volume"] == MIN_PUBLISHED_CASES


def test_performance_is_computed_once_for_every_institution(
    clean_db: Engine, redis_conn: redis.Redis
) -> None:
    institution = _institution(clean_db)
    with Session(clean_db) as session:
        first = published_performance(session, redis_conn)
        assert first == {}
        for n in range(MIN_PUBLISHED_CASES):
            session.add(
                Ticket(
                    number=f"CQ{n:010d}-B",
                    channel=Channel.web,
                    state=TicketState.closed,
                    category="legal",
                    institution_id=institution.id,
                    created_at=utcnow() - timedelta(days=3),
                )
            )
        session.commit()
        assert published_performance(session, redis_conn) == {}  # from the cache
        redis_conn.delete(PERFORMANCE_CACHE_KEY)
        fresh = published_performance(session, redis_conn)
    assert set(fresh) == {institution.id}
    assert fresh[institution.id].volume == MIN_PUBLISHED_CASES
    # The cached copy reads back as the same measures.
    with Session(clean_db) as session:
        assert published_performance(session, redis_conn) == fresh


@pytest.fixture
def survey(clean_db: Engine) -> tuple[str, int]:
    institution = _institution(clean_db)
    now = utcnow()
    with Session(clean_db, expire_on_commit=False) as session:
        ticket = Ticket(
            number="CQ2611280001-X",
            channel=Channel.sms,
            state=TicketState.revisit_pending,
            category="legal",
            institution_id=institution.id,
            caller_phone="+8613800138000",
            resolved_at=now - timedelta(days=1),
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        row = Revisit(
            ticket_id=ticket.id,
            institution_id=institution.id,
            due_at=now,
            survey_sent_at=now,
            survey_expires_at=now + timedelta(days=3),
        )
        session.add(row)
        session.commit()
        token = ticket_service.survey_link(row).split("token=")[1]
        return token, ticket.id


def test_evaluation_once(client: TestClient, clean_db: Engine, survey: tuple[str, int]) -> None:
    token, ticket_id = survey
    # The SMS link leads here.
    redirect = client.get(f"/revisit/survey?token={quote(token)}", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == f"/evaluate/{token}"
    form = client.get(f"/evaluate/{token}")
    assert form.status_code == 200
    assert "CQ2611280001-X" in form.text and 'name="satisfaction"' in form.text
    assert "需求已满足" in form.text
    incomplete = client.post(f"/evaluate/{token}", data={"outcome": "met"})
    assert incomplete.status_code == 422
    bad_score = client.post(f"/evaluate/{token}", data={"outcome": "met", "satisfaction": "9"})
    assert bad_score.status_code == 422
    done = client.post(
        f"/evaluate/{token}",
        data={"outcome": "met", "satisfaction": "4", "comment": "很及时"},
        params={"lang": "en"},
    )
    assert done.status_code == 200 and "Thank you" in done.text
    with Session(clean_db) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        assert ticket.state == TicketState.closed and ticket.satisfaction == 4
        assert ticket.revisit_outcome == "met"
        revisit = session.exec(select(Revisit).where(Revisit.ticket_id == ticket_id)).one()
        assert revisit.comment == "很及时" and revisit.completed_by == "web:evaluation"
    # Replay: refused.
    assert client.get(f"/evaluate/{token}").status_code == 410
    again = client.post(f"/evaluate/{token}", data={"outcome": "not_met", "satisfaction": "1"})
    assert again.status_code == 410
    with Session(clean_db) as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.satisfaction == 4


def test_evaluation_refuses_forgery_and_expiry(
    client: TestClient, clean_db: Engine, survey: tuple[str, int]
) -> None:
    token, ticket_id = survey
    message, signature = token.rsplit(".", 1)
    forged = f"{message}.{'A' * len(signature)}"
    assert client.get(f"/evaluate/{forged}").status_code == 410
    assert (
        client.post(f"/evaluate/{forged}", data={"outcome": "met", "satisfaction": "5"}).status_code
        == 410
    )
    other = message.split(".")
    other[0] = str(int(other[0]) + 1)
    assert client.get(f"/evaluate/{'.'.join(other)}.{signature}").status_code == 410
    assert client.get("/evaluate/garbage").status_code == 410
    # Expired: a link signed for a past moment.
    with Session(clean_db, expire_on_commit=False) as session:
        row = session.exec(select(Revisit).where(Revisit.ticket_id == ticket_id)).one()
        row.survey_expires_at = utcnow() - timedelta(minutes=1)
        expired = ticket_service.survey_link(row).split("token=")[1]
    page = client.get(f"/evaluate/{expired}")
    assert page.status_code == 410 and "已过期" in page.text
