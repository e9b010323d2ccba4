"""Migrations and the per-request unit of work."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

import hotline.models_registry  # noqa: F401
from hotline.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings.database_url), revision)
