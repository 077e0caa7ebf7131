"""Registries beyond ClinicalTrials.gov (EUCTR, CTIS, ISRCTN): when each record was last
fetched whole (the change signal of a registry without history is read against it), and of
its latest version the lifecycle and the registrations it names (listings show both); whose
registry each sync run was (each registry's cycles are the base of its own next one).

The two derived columns are filled from each record's latest stored version.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from service.store import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHUNK = 1000


def upgrade() -> None:
    op.add_column("records", sa.Column("fetched_at", UTCDateTime(), nullable=True))
    op.add_column(
        "records", sa.Column("lifecycle", sa.String(24), nullable=False, server_default="")
    )
    op.add_column("records", sa.Column("links", sa.JSON(), nullable=True))
    # every run so far was ClinicalTrials.gov's
    op.add_column(
        "sync_runs", sa.Column("registry", sa.String(16), nullable=False, server_default="ctgov")
    )
    _fill_derived(op.get_bind())


def _fill_derived(connection: Any) -> None:
    """Lifecycle and links of every record with a stored version, a chunk at a time."""
    from service.links import linked_ids
    from service.registry.catalog import registry_info

    records = sa.table(
        "records",
        sa.column("id"),
        sa.column("registry"),
        sa.column("study_id"),
        sa.column("latest_seq"),
        sa.column("lifecycle"),
        sa.column("links", sa.JSON()),
    )
    versions = sa.table(
        "record_versions", sa.column("record_id"), sa.column("seq"), sa.column("snapshot")
    )
    last = 0
    while True:
        rows = connection.execute(
            sa.select(records.c.id, records.c.registry, records.c.study_id, versions.c.snapshot)
            .join(
                versions,
                (versions.c.record_id == records.c.id) & (versions.c.seq == records.c.latest_seq),
            )
            .where(records.c.id > last)
            .order_by(records.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        updates = []
        for record_id, registry, study_id, snapshot_json in rows:
            snapshot = json.loads(snapshot_json)
            info = registry_info(registry)
            ids = snapshot.get("secondary_ids") or []
            source = info.paths.get("secondary_ids", "")
            updates.append(
                {
                    "rid": record_id,
                    "life": info.lifecycle(snapshot.get("overall_status", "")),
                    "linked": [
                        link.model_dump() for link in linked_ids(registry, study_id, ids, source)
                    ],
                }
            )
        connection.execute(
            records.update()
            .where(records.c.id == sa.bindparam("rid"))
            .values(lifecycle=sa.bindparam("life"), links=sa.bindparam("linked")),
            updates,
        )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("registry")
    with op.batch_alter_table("records") as batch:
        batch.drop_column("links")
        batch.drop_column("lifecycle")
        batch.drop_column("fetched_at")
