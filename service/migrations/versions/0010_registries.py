"""Registries without a version history (EUCTR, CTIS, ISRCTN): when each record was last
fetched whole (their change signal is read against it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("records", sa.Column("fetched_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("records") as batch:
        batch.drop_column("fetched_at")
