"""Server-side web sessions: a random id in an HttpOnly cookie, stored only as its SHA-256, with
its CSRF token, so that logout and expiry are real (the row is revoked or past its time)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from kb.db import timestamp_field, utcnow


class WebSession(SQLModel, table=True):
    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    token_sha256: str = Field(unique=True, max_length=64)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    csrf_token: str = Field(max_length=64)
    address: str = Field(default="", max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    last_seen_at: datetime = timestamp_field(default_factory=utcnow)
    expires_at: datetime = timestamp_field(index=True)
    revoked_at: datetime | None = timestamp_field(default=None)
