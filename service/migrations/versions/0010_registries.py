"""Registries without a version history (EUCTR, CTIS, ISRCTN): when each record was last
fetched whole (their change signal is read against it), and room for a last-update stamp
with a time of day (ISRCTN's ``lastUpdated``).

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
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("fetched_at", UTCDateTime(), nullable=True))
        batch.alter_column("last_update_posted", type_=sa.String(32), existing_type=sa.String(10))

    with op.batch_alter_table("record_versions") as batch:
        batch.alter_column("last_update_posted", type_=sa.String(32), existing_type=sa.String(10))


def downgrade() -> None:
    with op.batch_alter_table("record_versions") as batch:
        batch.alter_column("last_update_posted", type_=sa.String(10), existing_type=sa.String(32))
    with op.batch_alter_table("records") as batch:
        batch.alter_column("last_update_posted", type_=sa.String(10), existing_type=sa.String(32))
        batch.drop_column("fetched_at")
