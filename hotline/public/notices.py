"""Targeted information: publish a kb article as a notice to the firms subscribed to its
categories and districts, and fan it out as SMS through the telephony port from RQ.

Exactly once per recipient, even when a worker dies half-way: every recipient has a
``notice_delivery`` row (unique per notice and phone). A sender claims one pending row
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers) and, in the same
transaction, records the outbound message and marks the row sent. A killed worker loses at most
the transaction it had open, which leaves its row pending and no message recorded; the next run
(``hotline notify --resume``) sends what is still pending.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis
from rq import Queue, get_current_job
from rq.serializers import JSONSerializer
from sqlmodel import Session, col, func, select

from hotline.public.models import Notice, NoticeDelivery
from ivr_flows.models import MessageLog
from kb.articles import get_article, is_expired
from kb.db import get_engine, utcnow
from kb.models import Article, Category, District
from kb.subscriptions import Audience, audience_phones
from tickets import telephony
from tickets.models import OutboundMessage
from tickets.outbox import SessionFactory, session_factory_for
from tickets.repository import ticket_repository

log = logging.getLogger(__name__)

JOB_FUNCTION = "hotline.public.notices.run_notice_job"
QUEUE = "low"
PURPOSE = "notice"
SMS_CHARS = 180
DELIVERED = {"delivered", "read"}
FAILED = {"failed", "undelivered", "canceled"}


class NoticeError(ValueError):
    """The notice cannot be published as asked."""


def _excerpt(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def compose(article: Article, categories: Sequence[str]) -> tuple[str, str]:
    """The SMS in Chinese and in English, each within one long message."""
    key = categories[0] if categories else ""
    zh_tail = f" 回复“退订 {key}”不再接收此类通知，回复TD退订全部短信。"
    en_tail = f" Reply UNSUB {key} to stop these, STOP for all."
    zh_head = f"【中小企业服务热线】{article.title_zh}："
    en_head = f"SME hotline: {article.title_en}. "
    zh = zh_head + _excerpt(article.body_zh, SMS_CHARS - len(zh_head) - len(zh_tail)) + zh_tail
    en = en_head + _excerpt(article.body_en, 300 - len(en_head) - len(en_tail)) + en_tail
    return zh, en


def publish(
    session: Session,
    slug: str,
    *,
    actor: str,
    today: date,
    categories: Sequence[str] = (),
    districts: Sequence[str] = (),
    batch_size: int = 50,
    rate_per_second: float = 10.0,
) -> Notice:
    """A notice of article ``slug`` to the subscribers of ``categories`` (default: the
    article's) in ``districts`` (default: the article's; none means the whole city), with one
    pending delivery per phone. Flushes; the caller commits and then :func:`enqueue`\\ s it."""
    article = get_article(session, slug)
    if article is None:
        raise NoticeError(f"no article {slug!r}")
    if is_expired(article, today):
        raise NoticeError(f"article {slug!r} expired on {article.valid_until}")
    if batch_size < 1 or rate_per_second <= 0:
        raise NoticeError("batch size and rate must be positive")
    cats = list(dict.fromkeys(categories or article.categories))
    dists = list(dict.fromkeys(districts or article.districts))
    for key in cats:
        if session.get(Category, key) is None:
            raise NoticeError(f"unknown category {key!r}")
    for code in dists:
        if session.get(District, code) is None:
            raise NoticeError(f"unknown district {code!r}")
    assert article.id is not None
    zh, en = compose(article, cats)
    phones = audience_phones(session, Audience(tuple(cats), tuple(dists)))
    notice = Notice(
        article_id=article.id,
        categories=cats,
        districts=dists,
        body_zh=zh,
        body_en=en,
        created_by=actor,
        batch_size=batch_size,
        rate_per_second=rate_per_second,
        recipients=len(phones),
    )
    session.add(notice)
    session.flush()
    assert notice.id is not None
    for phone in phones:
        session.add(NoticeDelivery(notice_id=notice.id, phone=phone))
    if not phones:
        notice.finished_at = utcnow()
    session.flush()
    return notice


def enqueue(connection: redis.Redis, notice_id: int) -> str:
    """Put a sending job for the notice on RQ (another job for the same notice is harmless:
    the deliveries are claimed one by one)."""
    job_id = f"notice-{notice_id}-{uuid.uuid4().hex[:12]}"
    Queue(QUEUE, connection=connection, serializer=JSONSerializer).enqueue(
        JOB_FUNCTION,
        notice_id,
        job_id=job_id,
        description=f"notice {notice_id} fan-out",
        job_timeout=3600,
        result_ttl=24 * 3600,
    )
    return job_id


def unfinished(session: Session) -> list[int]:
    """Notices with deliveries still pending."""
    rows = session.exec(
        select(NoticeDelivery.notice_id).where(NoticeDelivery.status == "pending").distinct()
    ).all()
    return sorted(int(r) for r in rows)


def send_one(session: Session, notice: Notice) -> NoticeDelivery | None:
    """Claim one pending delivery, send it (or record it suppressed for an opted-out firm) and
    mark it, in the caller's transaction; None when nothing is pending."""
    delivery = session.exec(
        select(NoticeDelivery)
        .where(NoticeDelivery.notice_id == notice.id, NoticeDelivery.status == "pending")
        .order_by(col(NoticeDelivery.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if delivery is None:
        return None
    firm = ticket_repository.firm_by_phone(session, delivery.phone)
    body = notice.body_en if firm is not None and firm.language == "en" else notice.body_zh
    message = telephony.current().sms_firm(
        session, firm, to=delivery.phone, body=body, purpose=PURPOSE
    )
    delivery.status = "suppressed" if message.status == "suppressed" else "sent"
    delivery.outbound_message_id = message.id
    delivery.sent_at = utcnow()
    session.add(delivery)
    session.flush()
    return delivery


def send_batch(session_factory: SessionFactory, notice_id: int, *, pause: bool = True) -> int:
    """Up to the notice's batch size of deliveries, each in its own transaction, paced at its
    rate; returns how many were handled."""
    handled = 0
    while True:
        with session_factory() as session:
            notice = session.get(Notice, notice_id)
            if notice is None:
                return handled
            if handled >= notice.batch_size:
                return handled
            delivery = send_one(session, notice)
            if delivery is None:
                if notice.finished_at is None:
                    notice.finished_at = utcnow()
                    session.add(notice)
                return handled
            interval = 1.0 / notice.rate_per_second
        handled += 1
        if pause:
            time.sleep(interval)


def run_notice_job(notice_id: int) -> str:
    """The RQ job: one batch, then a follow-up job while deliveries are pending."""
    factory = session_factory_for(get_engine())
    handled = send_batch(factory, notice_id)
    with factory() as session:
        left = session.exec(
            select(func.count())
            .select_from(NoticeDelivery)
            .where(NoticeDelivery.notice_id == notice_id, NoticeDelivery.status == "pending")
        ).one()
    job = get_current_job()
    if left and job is not None:
        enqueue(job.connection, notice_id)
    log.info("notice %s: %s handled, %s pending", notice_id, handled, left)
    return f"{handled} handled, {left} pending"


@dataclass(frozen=True)
class Progress:
    total: int
    pending: int
    sent: int
    suppressed: int
    delivered: int
    failed: int

    @property
    def done(self) -> bool:
        return self.pending == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "pending": self.pending,
            "sent": self.sent,
            "suppressed": self.suppressed,
            "delivered": self.delivered,
            "failed": self.failed,
        }


def progress(session: Session, notice_id: int) -> Progress:
    """Counts by state; ``delivered`` and ``failed`` from Twilio's status callbacks (the
    message log, linked by MessageSid), counted among ``sent``."""
    rows = session.exec(
        select(NoticeDelivery.status, OutboundMessage.provider_sid)
        .select_from(NoticeDelivery)
        .join(
            OutboundMessage,
            col(OutboundMessage.id) == col(NoticeDelivery.outbound_message_id),
            isouter=True,
        )
        .where(NoticeDelivery.notice_id == notice_id)
    ).all()
    sids = [sid for _status, sid in rows if sid]
    latest: dict[str, str] = {}
    if sids:
        logs = session.exec(
            select(MessageLog)
            .where(col(MessageLog.message_sid).in_(sids))
            .order_by(col(MessageLog.at), col(MessageLog.id))
        ).all()
        for entry in logs:
            latest[entry.message_sid] = entry.status
    counts = {"pending": 0, "sent": 0, "suppressed": 0, "delivered": 0, "failed": 0}
    for status, sid in rows:
        counts[status] = counts.get(status, 0) + 1
        outcome = latest.get(sid or "")
        if outcome in DELIVERED:
            counts["delivered"] += 1
        elif outcome in FAILED:
            counts["failed"] += 1
    return Progress(total=len(rows), **counts)
