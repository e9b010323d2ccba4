"""Users and their API tokens.

A token is shown once when issued; only its SHA-256 is stored, so a leaked database does not leak
working tokens. ``password_hash`` is argon2 (argon2-cffi) and optional: the web login that uses it
comes later, API access works with tokens alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from kb.db import enum_field, timestamp_field, utcnow
from tickets.models import Role


class User(SQLModel, table=True):
    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    role: Role = enum_field(Role, 16)
    # Set for (and only for) institution staff: the one institution whose tickets they see.
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    password_hash: str | None = Field(default=None, max_length=255)
    active: bool = True
    created_at: datetime = timestamp_field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    token_sha256: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=64)
    created_at: datetime = timestamp_field(default_factory=utcnow)
    last_used_at: datetime | None = timestamp_field(default=None)
    revoked_at: datetime | None = timestamp_field(default=None)
