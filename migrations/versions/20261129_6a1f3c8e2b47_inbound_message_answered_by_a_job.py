"""inbound_message: answered by a job

The SMS webhook now stores the text and its job and answers Twilio at once; a worker answers
the text (in order per sender) and sends the reply through the REST API. ``answered_at`` marks
a text answered, ``opt_out_type`` keeps what Twilio's Advanced Opt-Out did with it. Texts
received before this revision were answered by their webhook: they are marked answered.

Revision ID: 6a1f3c8e2b47
Revises: 4b8e2f6a1d09
Create Date: 2026-11-29 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a1f3c8e2b47"
down_revision: str | None = "4b8e2f6a1d09"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNANSWERED = "answered_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("inbound_message") as batch:
        batch.add_column(
            sa.Column("opt_out_type", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE inbound_message SET answered_at = received_at")
    op.create_index(
        "ix_inbound_message_unanswered",
        "inbound_message",
        ["from_number", "id"],
        postgresql_where=sa.text(UNANSWERED),
        sqlite_where=sa.text(UNANSWERED),
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_message_unanswered", table_name="inbound_message")
    with op.batch_alter_table("inbound_message") as batch:
        batch.drop_column("answered_at")
        batch.drop_column("opt_out_type")
