"""outbox: index of the unfinished rows

Finished outbox rows are kept (they are the jobs' record), so the rescue pass that every worker
runs every few seconds, and the backlog gauge, must not read past them: a partial index holds
the unfinished rows in id order.

Revision ID: 7d3e1b9a0c52
Revises: 52f6988a4117
Create Date: 2026-11-28 05:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d3e1b9a0c52"
down_revision: str | None = "52f6988a4117"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDONE = "done_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_outbox_undone",
        "outbox",
        ["id"],
        postgresql_where=sa.text(UNDONE),
        sqlite_where=sa.text(UNDONE),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_undone", table_name="outbox")
