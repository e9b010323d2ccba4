"""Targeted-information notices: a kb article pushed to an audience, one delivery row per
recipient (unique per notice and phone, so nobody receives a notice twice)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from kb.db import timestamp_field, utcnow


class Notice(SQLModel, table=True):
    __tablename__ = "notice"
    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="kb_article.id", index=True)
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    districts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body_zh: str = Field(max_length=500)
    body_en: str = Field(max_length=500)
    created_by: str = Field(max_length=96)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    batch_size: int = 50
    rate_per_second: float = 10.0
    recipients: int = 0
    finished_at: datetime | None = timestamp_field(default=None)


class NoticeDelivery(SQLModel, table=True):
    """pending → sent (an outbound message exists) or suppressed (the firm opted out)."""

    __tablename__ = "notice_delivery"
    __table_args__ = (UniqueConstraint("notice_id", "phone"),)
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="notice.id", index=True)
    phone: str = Field(max_length=20)
    status: str = Field(default="pending", max_length=16, index=True)
    outbound_message_id: int | None = Field(
        default=None, foreign_key="outbound_message.id", index=True
    )
    sent_at: datetime | None = timestamp_field(default=None)
