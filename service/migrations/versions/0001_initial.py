"""The first tables: watches, records, record versions, sync runs, changes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("registry", sa.String(16), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("registry", "study_id", name="uq_watches_study"),
    )
    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("registry", sa.String(16), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("overall_status", sa.String(40), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("latest_seq", sa.Integer(), nullable=False),
        sa.Column("latest_registry_version", sa.Integer(), nullable=True),
        sa.Column("last_update_posted", sa.String(10), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_checked_at", UTCDateTime(), nullable=True),
        sa.Column("last_changed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("registry", "study_id", name="uq_records_study"),
    )
    op.create_table(
        "record_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "record_id",
            sa.Integer(),
            sa.ForeignKey("records.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("registry_version", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("raw_gz", sa.LargeBinary(), nullable=False),
        sa.Column("last_update_posted", sa.String(10), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("record_id", "seq", name="uq_record_versions_seq"),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("new", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "record_id",
            sa.Integer(),
            sa.ForeignKey("records.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sync_run_id", sa.Integer(), sa.ForeignKey("sync_runs.id"), nullable=True),
        sa.Column(
            "to_version_id",
            sa.Integer(),
            sa.ForeignKey("record_versions.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("field", sa.String(255), nullable=False),
        sa.Column("old", sa.JSON(), nullable=True),
        sa.Column("new", sa.JSON(), nullable=True),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("outcome_type", sa.String(16), nullable=True),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_changes_record_id", "changes", ["record_id"])
    op.create_index("ix_changes_detected_at", "changes", ["detected_at"])


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("sync_runs")
    op.drop_table("record_versions")
    op.drop_table("records")
    op.drop_table("watches")
