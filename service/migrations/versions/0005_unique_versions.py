"""A registry version is stored once per record: unique (record_id, registry_version).

Before it, a daemon and a manual `sync` racing on one store could each store the same
registry version (same number, same content), and `history` showed it twice. Existing
duplicates are removed first, keeping the earliest (lowest seq) of each: the changes stored
into a removed copy go too where the kept one has the same (kind, field), else move to the
kept one; each record's sequence is closed up again (1, 2, 3, …).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "uq_record_versions_registry"


def upgrade() -> None:
    connection = op.get_bind()
    duplicates = _duplicates(connection)
    if duplicates:
        _remove(connection, duplicates)
    # a unique index, not a constraint: on SQLite a constraint means rebuilding the table,
    # and dropping the old one would cascade into every change (foreign keys are on)
    op.create_index(INDEX, "record_versions", ["record_id", "registry_version"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="record_versions")


def _duplicates(connection: sa.Connection) -> dict[int, int]:
    """{id of a duplicate version: id of the copy kept (lowest seq of its record and number)}."""
    rows = connection.execute(
        sa.text(
            "SELECT id, record_id, registry_version FROM record_versions "
            "WHERE registry_version IS NOT NULL ORDER BY record_id, registry_version, seq"
        )
    ).all()
    kept: dict[tuple[int, int], int] = {}
    removed: dict[int, int] = {}
    for version_id, record_id, number in rows:
        key = (record_id, number)
        if key in kept:
            removed[version_id] = kept[key]
        else:
            kept[key] = version_id
    return removed


def _remove(connection: sa.Connection, duplicates: dict[int, int]) -> None:
    records = {
        row[0]
        for row in connection.execute(
            sa.text("SELECT DISTINCT record_id FROM record_versions WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": list(duplicates)},
        )
    }
    for removed, kept in duplicates.items():
        # changes found into a copy repeat those into the original and go; any other now
        # leads into the original
        connection.execute(
            sa.text(
                "UPDATE changes SET to_version_id = :kept WHERE to_version_id = :removed "
                "AND NOT EXISTS (SELECT 1 FROM changes AS c WHERE c.to_version_id = :kept "
                "AND c.kind = changes.kind AND c.field = changes.field)"
            ),
            {"kept": kept, "removed": removed},
        )
        connection.execute(
            sa.text("DELETE FROM changes WHERE to_version_id = :removed"), {"removed": removed}
        )
        connection.execute(
            sa.text("DELETE FROM record_versions WHERE id = :removed"), {"removed": removed}
        )
    for record_id in records:
        _renumber(connection, record_id)


def _renumber(connection: sa.Connection, record_id: int) -> None:
    """Close the gaps the removed copies left in a record's sequence (1, 2, 3, …), and point
    the record at its latest version again. Two passes, through negative numbers, so that the
    unique (record_id, seq) constraint holds after every statement."""
    ids = [
        row[0]
        for row in connection.execute(
            sa.text("SELECT id FROM record_versions WHERE record_id = :r ORDER BY seq"),
            {"r": record_id},
        )
    ]
    for seq, version_id in enumerate(ids, start=1):
        connection.execute(
            sa.text("UPDATE record_versions SET seq = :s WHERE id = :v"),
            {"s": -seq, "v": version_id},
        )
    connection.execute(
        sa.text("UPDATE record_versions SET seq = -seq WHERE record_id = :r"), {"r": record_id}
    )
    latest = connection.execute(
        sa.text(
            "SELECT seq, registry_version, content_hash FROM record_versions "
            "WHERE record_id = :r ORDER BY seq DESC LIMIT 1"
        ),
        {"r": record_id},
    ).first()
    if latest is not None:
        connection.execute(
            sa.text(
                "UPDATE records SET latest_seq = :seq, latest_registry_version = :number, "
                "content_hash = :hash WHERE id = :r"
            ),
            {"seq": latest[0], "number": latest[1], "hash": latest[2], "r": record_id},
        )
