"""The EU results rules (EUCTR, CTIS) review records stored before they existed: each such
record is due for a findings review at once (a trial that ended long ago and stays silent
would otherwise never be looked at: only a new version or a due day starts a review).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DUE_AT_ONCE = "2000-01-01"  # any day before today: the next cycle's review takes them


def upgrade() -> None:
    records = sa.table(
        "records",
        sa.column("registry", sa.String),
        sa.column("latest_seq", sa.Integer),
        sa.column("findings_due", sa.String),
    )
    op.execute(
        records.update()
        .where(
            records.c.registry.in_(["euctr", "ctis"]),
            records.c.latest_seq > 0,
            records.c.findings_due.is_(None),
        )
        .values(findings_due=DUE_AT_ONCE)
    )


def downgrade() -> None:
    pass  # a due day is a hint: the rules set it again
