"""Real-world fidelity: the id a record is served under, a resumable history backfill queue,
and both list positions of an outcome change.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as batch:
        # the id the registry now serves the record under, when it answers for an alias
        batch.add_column(sa.Column("served_id", sa.String(64), nullable=True))
        # history backfill queue: pending | done | failed; NULL = not wanted
        batch.add_column(sa.Column("backfill", sa.String(16), nullable=True))
        batch.add_column(sa.Column("backfill_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("backfill_after", UTCDateTime(), nullable=True))
    op.create_index("ix_records_backfill", "records", ["backfill"])
    with op.batch_alter_table("changes") as batch:
        batch.add_column(sa.Column("old_field", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("changes") as batch:
        batch.drop_column("old_field")
    op.drop_index("ix_records_backfill", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("backfill_after")
        batch.drop_column("backfill_error")
        batch.drop_column("backfill")
        batch.drop_column("served_id")
