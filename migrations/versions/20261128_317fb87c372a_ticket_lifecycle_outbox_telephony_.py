"""ticket lifecycle, outbox, telephony, accounts

The case lifecycle's columns on ``ticket`` (milestones, SLA due times, escalation, closure,
revisit outcome, capacity flag), the actor's role on ``ticket_event``, and the new tables:
``revisit``, ``outbox`` (transactional outbox), ``outbound_call`` and ``outbound_message``
(telephony port), ``app_user`` and ``api_token`` (API accounts). New NOT NULL columns on existing
tables carry server defaults so that existing rows migrate. Batch mode keeps SQLite working.

Revision ID: 317fb87c372a
Revises: b088f94b844d
Create Date: 2026-11-28 00:13:49.842003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401
from alembic import op

revision: str = "317fb87c372a"
down_revision: str | None = "b088f94b844d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_app_user_institution_id_institution"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_app_user_institution_id"), ["institution_id"], unique=False
        )

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_api_token_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_token_token_sha256")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "outbound_call",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to_number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("from_number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_outbound_call_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_call")),
    )
    with op.batch_alter_table("outbound_call", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_call_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbound_call_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "outbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("to_number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("from_number", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("firm_id", sa.Integer(), nullable=True),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("provider_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["firm_id"], ["firm.id"], name=op.f("fk_outbound_message_firm_id_firm")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_outbound_message_institution_id_institution"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_outbound_message_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_message")),
    )
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_message_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbound_message_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("queue", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_outbox_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_relayed_at"), ["relayed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "revisit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("unanswered", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("survey_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("survey_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("recording_url", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_by", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_revisit_institution_id_institution"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["ticket.id"], name=op.f("fk_revisit_ticket_id_ticket")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revisit")),
    )
    with op.batch_alter_table("revisit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revisit_completed_at"), ["completed_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_revisit_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_revisit_ticket_id"), ["ticket_id"], unique=False)

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("subject_agent", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=True)
        )
        batch_op.add_column(
            sa.Column("counts_as_open", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("first_contact_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("accept_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contact_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("resolve_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("closure", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column("revisit_outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(sa.Column("satisfaction", sa.Integer(), nullable=True))
        batch_op.alter_column(
            "assignee",
            existing_type=sa.VARCHAR(length=64),
            type_=sqlmodel.sql.sqltypes.AutoString(length=96),
            existing_nullable=True,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_duplicate_of_id_ticket"), "ticket", ["duplicate_of_id"], ["id"]
        )

    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "actor_role",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="system",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_event", schema=None) as batch_op:
        batch_op.drop_column("actor_role")

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_ticket_duplicate_of_id_ticket"), type_="foreignkey")
        batch_op.alter_column(
            "assignee",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=96),
            type_=sa.VARCHAR(length=64),
            existing_nullable=True,
        )
        batch_op.drop_column("satisfaction")
        batch_op.drop_column("revisit_outcome")
        batch_op.drop_column("closure")
        batch_op.drop_column("reopen_count")
        batch_op.drop_column("escalated_at")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("resolve_due_at")
        batch_op.drop_column("contact_due_at")
        batch_op.drop_column("accept_due_at")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("resolved_at")
        batch_op.drop_column("first_contact_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("dispatched_at")
        batch_op.drop_column("counts_as_open")
        batch_op.drop_column("subject_agent")
        batch_op.drop_column("duplicate_of_id")

    with op.batch_alter_table("revisit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revisit_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_revisit_institution_id"))
        batch_op.drop_index(batch_op.f("ix_revisit_completed_at"))

    op.drop_table("revisit")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_relayed_at"))

    op.drop_table("outbox")
    with op.batch_alter_table("outbound_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_message_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_message_status"))

    op.drop_table("outbound_message")
    with op.batch_alter_table("outbound_call", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_call_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_call_status"))

    op.drop_table("outbound_call")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))

    op.drop_table("api_token")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_user_institution_id"))

    op.drop_table("app_user")
