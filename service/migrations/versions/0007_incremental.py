"""Incremental cycles: how each sync cycle settled the watch list (``mode``: probe, listing
or quiet), the registry's data timestamp it saw, and the day its changed-since listing began.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=True))
        batch.add_column(sa.Column("registry_timestamp", sa.String(40), nullable=True))
        batch.add_column(sa.Column("since", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("since")
        batch.drop_column("registry_timestamp")
        batch.drop_column("mode")
