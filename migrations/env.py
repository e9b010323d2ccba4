"""Alembic environment: the URL comes from the caller (``hotline db upgrade``) or the settings."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

import hotline.models_registry  # noqa: F401  (imports every table onto the metadata)
from kb.db import StrEnumType, make_engine, metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from hotline.settings import load_settings

        url = load_settings().database_url
    return str(url)


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Enum columns are plain VARCHARs in migrations: no import of application types there."""
    if type_ == "type" and isinstance(obj, StrEnumType):
        return f"sa.String(length={obj.impl.length})"  # type: ignore[attr-defined]
    return False


def _expression_indexes() -> set[str]:
    return {
        str(index.name)
        for table in metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(element, sa.Column) for element in index.expressions)
    }


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Indexes on expressions are written by hand in their migration and left out of the
    comparison: SQLite cannot reflect them and PostgreSQL reads back its own normalised text of
    the expression, so autogenerate would drop and recreate them every time."""
    return not (type_ == "index" and name in _expression_indexes())


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection, url)
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn, url)
    finally:
        engine.dispose()


def _run(connection: object, url: str) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=url.startswith("sqlite"),
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
