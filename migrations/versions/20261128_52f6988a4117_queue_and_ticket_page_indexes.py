"""queue and ticket page indexes

The work queue is sorted by an expression (when something must happen next, see
``tickets.models.queue_urgency``); these indexes hold it, so the first page of the default view
and of a one-state view is read in order from an index whatever the number of ended tickets.
Autogenerate cannot compare expression indexes (it warns that it skips them): they are written
here by hand, with the same expression as the model's.

Revision ID: 52f6988a4117
Revises: 9c4d2e7f1a30
Create Date: 2026-11-28 04:08:10.834594
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "52f6988a4117"
down_revision: str | None = "9c4d2e7f1a30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

URGENCY = (
    "coalesce(CASE WHEN (accepted_at IS NULL) THEN accept_due_at END, resolve_due_at, created_at)"
)
QUEUE_STATES = (
    "state IN ('new', 'dispatched', 'accepted', 'in_progress', 'reopened', 'escalated', 'declined')"
)
BREACHES = "task = 'sla_check' AND result = 'escalated'"


def upgrade() -> None:
    op.create_index(
        "ix_ticket_queue_open",
        "ticket",
        [sa.text("kind"), sa.text(URGENCY), sa.text("id")],
        postgresql_where=sa.text(QUEUE_STATES),
        sqlite_where=sa.text(QUEUE_STATES),
    )
    op.create_index(
        "ix_ticket_queue_state",
        "ticket",
        [sa.text("kind"), sa.text("state"), sa.text(URGENCY), sa.text("id")],
    )
    op.create_index("ix_inbound_message_ticket_id", "inbound_message", ["ticket_id"])
    op.create_index(
        "ix_outbox_sla_breaches",
        "outbox",
        ["id"],
        postgresql_where=sa.text(BREACHES),
        sqlite_where=sa.text(BREACHES),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_sla_breaches", table_name="outbox")
    op.drop_index("ix_inbound_message_ticket_id", table_name="inbound_message")
    op.drop_index("ix_ticket_queue_state", table_name="ticket")
    op.drop_index("ix_ticket_queue_open", table_name="ticket")
