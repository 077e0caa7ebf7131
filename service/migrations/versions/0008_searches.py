"""Saved searches: a named registry query refreshed every cycle, and the records it matches.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("registry", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=True),
        sa.Column("refreshed_stamp", sa.String(40), nullable=True),
        sa.UniqueConstraint("name", name="uq_searches_name"),
    )
    op.create_table(
        "search_matches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "search_id",
            sa.Integer(),
            sa.ForeignKey("searches.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("matched_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("search_id", "study_id", name="uq_search_matches_study"),
    )


def downgrade() -> None:
    op.drop_table("search_matches")
    op.drop_table("searches")
