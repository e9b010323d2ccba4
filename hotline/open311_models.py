"""Open311 API keys: only the SHA-256 of each key is stored; the key is shown once, at
creation."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from kb.db import timestamp_field, utcnow


class Open311ApiKey(SQLModel, table=True):
    __tablename__ = "open311_api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=96)
    key_sha256: str = Field(unique=True, max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    revoked_at: datetime | None = timestamp_field(default=None)
    last_used_at: datetime | None = timestamp_field(default=None)
