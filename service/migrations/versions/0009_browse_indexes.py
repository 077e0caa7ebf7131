"""Indexes for the web app's pages: records by last change and by status, changes by kind.

The pages paginate by keyset on these columns (then the id), so a page of 100,000 records or
changes is an index range, never a sort of the whole table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_records_last_changed", "records", ["last_changed_at", "study_id"])
    op.create_index("ix_records_status", "records", ["overall_status", "study_id"])
    op.create_index("ix_changes_kind_id", "changes", ["kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_changes_kind_id", "changes")
    op.drop_index("ix_records_status", "records")
    op.drop_index("ix_records_last_changed", "records")
