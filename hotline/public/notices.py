"""Targeted information: publish a kb article as a notice to the firms subscribed to its
categories and districts, and fan it out as SMS through the telephony port from RQ.

Exactly once per recipient, even when a worker dies half-way: every recipient has a
``notice_delivery`` row (unique per notice and phone). A sender claims one pending row
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite serialises writers) and, in the same
transaction, records the outbound message and marks the row sent. A killed worker loses at most
the transaction it had open, which leaves its row pending and no message recorded.

Nobody has to restart an interrupted send: the workers' periodic maintenance
(:func:`resume_stranded`, from ``hotline.worker``) queues a notice again when it has pending
deliveries, no sender holds its lock and no job for it is waiting in RQ. One sender per notice at a
time (a Redis lock with a short lease, renewed after every message) keeps the notice's rate; the
row claim, not the lock, is what keeps anyone from receiving it twice.

With Twilio, a worker killed in the instant between Twilio accepting a message and the commit
leaves that row pending, and it is sent again on resume: the window is one REST call wide, and
Twilio offers no idempotency key to close it.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import redis
from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlmodel import Session, col, func, select

from hotline.public.models import Notice, NoticeDelivery
from ivr_flows.models import MessageLog
from kb.articles import get_article, is_expired
from kb.db import as_utc, get_engine, utcnow
from kb.models import Article, Category, District
from kb.subscriptions import Audience, audience_phones
from tickets import telephony
from tickets.models import Firm, OutboundMessage, Role
from tickets.outbox import SessionFactory, session_factory_for
from tickets.repository import ticket_repository
from tickets.service import Actor

log = logging.getLogger(__name__)

JOB_FUNCTION = "hotline.public.notices.run_notice_job"
QUEUE = "low"
PURPOSE = "notice"
SMS_CHARS = 180
DELIVERED = {"delivered", "read"}
FAILED = {"failed", "undelivered", "canceled"}
# Who may push a notice to firms: supervisors and admins, and the hotline's own tools (the CLI).
PUBLISHERS = frozenset({Role.supervisor, Role.admin, Role.system})
# A sender's lease on its notice; renewed after every message, so a dead sender's lapses soon.
LOCK_SECONDS = 10
# A notice is queued again at most this often, so a job that keeps failing is not re-run in a loop.
RESUME_BACKOFF_SECONDS = 30
POINTER_SECONDS = 7 * 24 * 3600
# RQ states in which a job will still run (or is running) without help.
WAITING = {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


class NoticeError(ValueError):
    """The notice cannot be published as asked. ``code`` names the problem for translated
    messages (``notices.error.<code>``), ``value`` the word at fault."""

    def __init__(self, message: str, *, code: str = "invalid", value: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.value = value


class NoticeForbidden(NoticeError):
    """The actor's role may not publish notices."""


def _lock_key(notice_id: int) -> str:
    return f"hotline:notice:{notice_id}:sender"


def _job_key(notice_id: int) -> str:
    return f"hotline:notice:{notice_id}:job"


def _resumed_key(notice_id: int) -> str:
    return f"hotline:notice:{notice_id}:resumed"


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


@dataclass(frozen=True)
class AudienceSize:
    """Who a notice would reach: the subscribers, less the firms that opted out of all SMS."""

    categories: tuple[str, ...]
    districts: tuple[str, ...]
    subscribed: int
    opted_out: int

    @property
    def reachable(self) -> int:
        return self.subscribed - self.opted_out


def _audience(
    session: Session, article: Article, categories: Sequence[str], districts: Sequence[str]
) -> Audience:
    cats = list(dict.fromkeys(categories or article.categories))
    dists = list(dict.fromkeys(districts or article.districts))
    if not cats:
        raise NoticeError(
            f"article {article.slug!r} names no category: choose one", code="no_category"
        )
    for key in cats:
        if session.get(Category, key) is None:
            raise NoticeError(f"unknown category {key!r}", code="unknown_category", value=key)
    for code in dists:
        if session.get(District, code) is None:
            raise NoticeError(f"unknown district {code!r}", code="unknown_district", value=code)
    return Audience(tuple(cats), tuple(dists))


def _article(session: Session, slug: str, today: date) -> Article:
    article = get_article(session, slug)
    if article is None:
        raise NoticeError(f"no article {slug!r}", code="no_article", value=slug)
    if is_expired(article, today):
        raise NoticeError(
            f"article {slug!r} expired on {article.valid_until}",
            code="expired",
            value=str(article.valid_until),
        )
    return article


def opted_out(session: Session, phones: Sequence[str]) -> set[str]:
    """The phones among ``phones`` whose firm stopped all SMS (STOP/退订)."""
    found: set[str] = set()
    for start in range(0, len(phones), 500):
        chunk = list(phones[start : start + 500])
        found.update(
            session.exec(
                select(Firm.phone).where(
                    col(Firm.phone).in_(chunk), col(Firm.sms_opted_out).is_(True)
                )
            ).all()
        )
    return found


@dataclass(frozen=True)
class Draft:
    """A notice before it is published: the article, the SMS texts and who they would reach."""

    article: Article
    size: AudienceSize
    body_zh: str
    body_en: str


def draft(
    session: Session,
    slug: str,
    *,
    today: date,
    categories: Sequence[str] = (),
    districts: Sequence[str] = (),
) -> Draft:
    """What :func:`publish` would send and to how many, without writing anything (the same
    defaults and checks)."""
    article = _article(session, slug, today)
    audience = _audience(session, article, categories, districts)
    phones = audience_phones(session, audience)
    size = AudienceSize(
        audience.categories, audience.districts, len(phones), len(opted_out(session, phones))
    )
    zh, en = compose(article, audience.categories)
    return Draft(article, size, zh, en)


def publish(
    session: Session,
    slug: str,
    *,
    actor: Actor,
    today: date,
    categories: Sequence[str] = (),
    districts: Sequence[str] = (),
    batch_size: int = 50,
    rate_per_second: float = 10.0,
) -> Notice:
    """A notice of article ``slug`` to the subscribers of ``categories`` (default: the
    article's) in ``districts`` (default: the article's; none means the whole city), with one
    pending delivery per phone. The notice row is the record of who published what to whom and
    when. Flushes; the caller commits and then :func:`enqueue`\\ s it."""
    if actor.role not in PUBLISHERS:
        raise NoticeForbidden(
            f"{actor.name} ({actor.role}) may not publish notices", code="forbidden"
        )
    article = _article(session, slug, today)
    if batch_size < 1 or rate_per_second <= 0:
        raise NoticeError("batch size and rate must be positive", code="pace")
    audience = _audience(session, article, categories, districts)
    assert article.id is not None
    zh, en = compose(article, audience.categories)
    phones = audience_phones(session, audience)
    notice = Notice(
        article_id=article.id,
        categories=list(audience.categories),
        districts=list(audience.districts),
        body_zh=zh,
        body_en=en,
        created_by=actor.name,
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
    log.info(
        "notice %s published by %s: article %s to %s recipient(s), categories %s, districts %s",
        notice.id,
        actor.name,
        slug,
        len(phones),
        ",".join(audience.categories),
        ",".join(audience.districts) or "all",
    )
    return notice


def enqueue(connection: redis.Redis, notice_id: int) -> str:
    """Put a sending job for the notice on RQ and remember it as the notice's current job (the
    maintenance looks there). Another job for the same notice is harmless: the deliveries are
    claimed one by one, and the sender lock lets one job send at a time."""
    job_id = f"notice-{notice_id}-{uuid.uuid4().hex[:12]}"
    Queue(QUEUE, connection=connection, serializer=JSONSerializer).enqueue(
        JOB_FUNCTION,
        notice_id,
        job_id=job_id,
        description=f"notice {notice_id} fan-out",
        job_timeout=3600,
        result_ttl=24 * 3600,
    )
    connection.set(_job_key(notice_id), job_id, ex=POINTER_SECONDS)
    return job_id


class SenderLock:
    """The one sender of a notice: a Redis key holding this sender's random token, with a
    short lease that :meth:`renew` extends after each message."""

    _RENEW = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then "
        "return redis.call('pexpire', KEYS[1], ARGV[2]) "
        "elseif redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 "
        "else return 0 end"
    )
    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
        "else return 0 end"
    )

    def __init__(self, connection: redis.Redis, notice_id: int) -> None:
        self.connection = connection
        self.key = _lock_key(notice_id)
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        return bool(self.connection.set(self.key, self.token, nx=True, ex=LOCK_SECONDS))

    def renew(self, pause: float = 0.0) -> bool:
        """Extend the lease past the coming pause; False when another sender holds it."""
        lease = int((LOCK_SECONDS + pause) * 1000)
        return bool(self.connection.eval(self._RENEW, 1, self.key, self.token, lease))

    def release(self) -> None:
        self.connection.eval(self._RELEASE, 1, self.key, self.token)


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


def send_batch(
    session_factory: SessionFactory,
    notice_id: int,
    *,
    pause: bool = True,
    keep: Callable[[float], bool] | None = None,
) -> int:
    """Up to the notice's batch size of deliveries, each in its own transaction, paced at its
    rate; returns how many were handled. ``keep(pause)`` is asked after each message whether
    this sender still holds the notice (the lock's renewal); it stops when it does not."""
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
        if keep is not None and not keep(interval):
            log.warning("notice %s: another sender took over", notice_id)
            return handled
        if pause:
            time.sleep(interval)


def pending_count(session: Session, notice_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(NoticeDelivery)
            .where(NoticeDelivery.notice_id == notice_id, NoticeDelivery.status == "pending")
        ).one()
    )


def run_notice_job(notice_id: int) -> str:
    """The RQ job: one batch under the notice's sender lock, then a follow-up job while
    deliveries are pending (queued before the lock is let go, so the maintenance never sees the
    notice without a sender or a waiting job)."""
    factory = session_factory_for(get_engine())
    job = get_current_job()
    lock = SenderLock(job.connection, notice_id) if job is not None else None
    if lock is not None and not lock.acquire():
        # Another job is sending it; that one queues what follows.
        return "another sender holds the notice"
    try:
        handled = send_batch(factory, notice_id, keep=lock.renew if lock else None)
        with factory() as session:
            left = pending_count(session, notice_id)
        if left and job is not None:
            enqueue(job.connection, notice_id)
    finally:
        if lock is not None:
            lock.release()
    log.info("notice %s: %s handled, %s pending", notice_id, handled, left)
    return f"{handled} handled, {left} pending"


def _job_will_run(connection: redis.Redis, notice_id: int, now: datetime) -> bool:
    """Whether the notice's current job is waiting in RQ, or started so recently that it may
    not have taken the lock yet."""
    raw = connection.get(_job_key(notice_id))
    if raw is None:
        return False
    job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status in WAITING:
        return True
    if status == JobStatus.STARTED and job.started_at is not None:
        # Started and still without the lock past its lease: its worker died (RQ notices only
        # much later, when the job's heartbeat lapses).
        return now - as_utc(job.started_at) < timedelta(seconds=LOCK_SECONDS)
    return False


def resume_stranded(
    session_factory: SessionFactory, connection: redis.Redis, *, now: datetime | None = None
) -> list[int]:
    """Queue again every notice with pending deliveries that nobody is sending and no job
    will send (its worker was killed, its job failed, Redis lost it, or it was never queued).
    Run periodically by every worker; a short per-notice marker keeps two workers from queuing
    the same notice together. Returns the notices queued."""
    moment = now or utcnow()
    with session_factory() as session:
        waiting = unfinished(session)
        _close_finished(session, moment)
    resumed = []
    for notice_id in waiting:
        if connection.exists(_lock_key(notice_id)) or _job_will_run(connection, notice_id, moment):
            continue
        if not connection.set(_resumed_key(notice_id), "1", nx=True, ex=RESUME_BACKOFF_SECONDS):
            continue
        enqueue(connection, notice_id)
        log.warning("notice %s: its send was interrupted; queued again", notice_id)
        resumed.append(notice_id)
    return resumed


def _close_finished(session: Session, now: datetime) -> None:
    """Stamp notices whose last delivery was handled by a sender that died before it could."""
    open_notices = session.exec(select(Notice).where(col(Notice.finished_at).is_(None))).all()
    for notice in open_notices:
        assert notice.id is not None
        if pending_count(session, notice.id) == 0:
            notice.finished_at = now
            session.add(notice)


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


@dataclass(frozen=True)
class NoticeSummary:
    notice: Notice
    article: Article
    handled: int

    @property
    def done(self) -> bool:
        return self.handled >= self.notice.recipients


def recent(session: Session, limit: int = 50) -> list[NoticeSummary]:
    """The latest notices, newest first, with how many of their deliveries are handled."""
    rows = session.exec(
        select(Notice, Article)
        .join(Article, col(Article.id) == col(Notice.article_id))
        .order_by(col(Notice.id).desc())
        .limit(limit)
    ).all()
    ids = [notice.id for notice, _article in rows]
    handled: dict[int, int] = {}
    if ids:
        for notice_id, count in session.exec(
            select(NoticeDelivery.notice_id, func.count())
            .where(col(NoticeDelivery.notice_id).in_(ids), NoticeDelivery.status != "pending")
            .group_by(col(NoticeDelivery.notice_id))
        ).all():
            handled[int(notice_id)] = int(count)
    return [
        NoticeSummary(notice, article, handled.get(notice.id or 0, 0)) for notice, article in rows
    ]
