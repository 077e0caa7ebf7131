"""The store's own facts (table ``meta``), with the first: ``store_id``, a random UUID minted
here, once per store. The Atom feeds derive their ids from it, so the entries of two stores
never share an id and a store's never change; ``legacy_entry_ids_upto``, the last change stored
before this upgrade, whose entries keep the ids they had. And an index for the messages of a
study to a channel (the changes of one sync join that study's message).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    # changes stored before the upgrade keep the entry ids readers already have (the old
    # tag: URIs): a reader never sees one of them twice
    upto = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM changes")).scalar()
    op.bulk_insert(
        meta,
        [
            {"key": "store_id", "value": str(uuid.uuid4())},
            {"key": "legacy_entry_ids_upto", "value": str(upto or 0)},
        ],
    )

    # a study's pending message to a channel, which the changes of the same sync join
    op.create_index("ix_outbox_record_channel", "outbox", ["record_id", "channel"])


def downgrade() -> None:
    op.drop_index("ix_outbox_record_channel", table_name="outbox")
    op.drop_table("meta")
