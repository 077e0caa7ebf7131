"""Transparency findings: one row per time a rule held for a record (open, then resolved),
and the day each record's date-dependent rules are next due for a look.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "record_id",
            sa.Integer(),
            sa.ForeignKey("records.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("historical", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_findings_record_id", "findings", ["record_id"])
    op.create_index("ix_findings_state", "findings", ["state"])
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("findings_due", sa.String(10), nullable=True))
    op.create_index("ix_records_findings_due", "records", ["findings_due"])


def downgrade() -> None:
    op.drop_index("ix_records_findings_due", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("findings_due")
    op.drop_index("ix_findings_state", table_name="findings")
    op.drop_index("ix_findings_record_id", table_name="findings")
    op.drop_table("findings")
