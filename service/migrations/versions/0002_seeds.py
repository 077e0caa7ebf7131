"""Seed studies (the documents trialwatch starts from) and their registry links.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seeds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seed_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("seed_id", name="uq_seeds_seed_id"),
    )
    op.create_table(
        "seed_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "seed_row_id",
            sa.Integer(),
            sa.ForeignKey("seeds.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("registry", sa.String(16), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("from_file", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("seed_row_id", "registry", "study_id", name="uq_seed_links_study"),
    )
    op.create_index("ix_seed_links_seed_row_id", "seed_links", ["seed_row_id"])
    op.create_index("ix_seed_links_registry_study", "seed_links", ["registry", "study_id"])


def downgrade() -> None:
    op.drop_table("seed_links")
    op.drop_table("seeds")
