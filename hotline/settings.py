"""The one settings object. Nothing else in the project reads the environment."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting has a bad value; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    var_dir: Path = Path("var")
    database_url: str = "sqlite:///var/hotline.db"
    redis_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_agent_workflow_sid: str = Field(
        default="WW" + "0" * 32, description="TaskRouter workflow that queues calls for agents"
    )
    public_base_url: str = "http://127.0.0.1:8000"
    main_number: str = "+862312345"
    monitor_number: str = "+862312346"
    timezone: str = "Asia/Shanghai"
    default_region: str = Field(default="CN", description="Region for numbers without +")
    log_level: str = "INFO"
    log_flush_seconds: float = Field(
        default=0.5,
        ge=0,
        le=60,
        description=(
            "Log lines below WARNING are written in batches at most this often (0: each at "
            "once); a WARNING or worse is written at once, with the lines before it"
        ),
    )
    web_threads: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="Requests one web process runs at once (its thread pool); more wait in order",
    )
    metrics_token: str | None = Field(
        default=None, description="Bearer token for /metrics; unset: loopback clients only"
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("main_number", "monitor_number")
    @classmethod
    def _phone(cls, value: str) -> str:
        try:
            parsed = phonenumbers.parse(value, "CN")
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"not a phone number: {exc}") from None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def twilio_configured(self) -> bool:
        """Real Twilio credentials given: the REST adapter is used instead of the offline one."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @cached_property
    def auth_token(self) -> str:
        """The token Twilio signs webhooks with; offline, a development token kept in var/."""
        if self.twilio_auth_token:
            return self.twilio_auth_token
        path = self.var_dir / "dev_twilio_auth_token"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        path.write_text(token + "\n")
        path.chmod(0o600)
        return token

    @property
    def account_sid(self) -> str:
        return self.twilio_account_sid or "AC" + "0" * 32

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a validation error into one line that names the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise SettingsError(f"HOTLINE_{name.upper()}: {first['msg']}") from None
