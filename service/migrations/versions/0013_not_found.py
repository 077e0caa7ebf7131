"""A watched id the registry says it never had: when that was first reported, and when it was
last asked for (it is asked again only every ``not_found_retry_days``). Both empty for every
other watch, and again once the registry serves the record.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        batch.add_column(sa.Column("not_found_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("not_found_checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("watches") as batch:
        batch.drop_column("not_found_checked_at")
        batch.drop_column("not_found_at")
