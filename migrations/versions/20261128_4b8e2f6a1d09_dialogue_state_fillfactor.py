"""dialogue_state: room on each page for its rows' updates

A call's state row is updated at every step of the call and once more when it ends. With
pages packed full, each update writes a new row version on another page and new entries in
every index of the table; with room left on the page, PostgreSQL updates in place when no
indexed column changes (a "HOT" update), as the end of a served call does. PostgreSQL only;
existing pages get the room as they are rewritten.

Revision ID: 4b8e2f6a1d09
Revises: 7d3e1b9a0c52
Create Date: 2026-11-28 22:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4b8e2f6a1d09"
down_revision: str | None = "7d3e1b9a0c52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE dialogue_state SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE dialogue_state RESET (fillfactor)")
