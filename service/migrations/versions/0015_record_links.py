"""What a store of a whole registry (600,000 records) needs to answer a page in 200 ms.

- ``record_links``: the registrations each record's latest version names (``records.links``,
  a JSON list), one row each, indexed by the id named. "Which records name NCT…?" (a record
  page's trial, the trial column of ``/api/studies``) was a ``LIKE`` over every record's
  links: one pass over 600,000 rows a step of the walk (3 s for a page of 50). The database
  keeps the table itself, by triggers on ``records`` (SQLite: ``json_each``; PostgreSQL: a
  PL/pgSQL function over ``json_array_elements``), so every writer of ``records.links``
  (a sync, the bulk import, one record at a time or in batches) keeps it without a line of
  Python; rows go with their record (``ON DELETE CASCADE``).
- ``ix_findings_state_id`` (state, id DESC): ``/findings`` lists open findings first, newest
  first (``ORDER BY state, id DESC``, or both reversed for a previous page); the index on
  ``state`` alone cannot give that mixed order, so every page sorted every finding (300 ms
  at 600,000 records).
- ``ix_records_study``: records by study id alone (``changes --study``, ``findings --study``,
  the web's study filters): the unique (registry, study_id) index cannot serve a lookup
  without the registry, which was a scan of every record.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# SQLite: a link is an object of the JSON list (a scalar 'null', stored for a record without
# links, has no elements of type object)
_SQLITE_LINKS_OF_NEW = """
    INSERT INTO record_links (record_id, registry, study_id)
    SELECT NEW.id, json_extract(value, '$.registry'), json_extract(value, '$.study_id')
    FROM json_each(NEW.links)
    WHERE type = 'object' AND json_extract(value, '$.study_id') IS NOT NULL
      AND json_extract(value, '$.registry') IS NOT NULL;
"""
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER record_links_insert AFTER INSERT ON records
    WHEN NEW.links IS NOT NULL BEGIN {_SQLITE_LINKS_OF_NEW} END""",
    f"""CREATE TRIGGER record_links_update AFTER UPDATE OF links ON records
    WHEN OLD.links IS NOT NEW.links BEGIN
    DELETE FROM record_links WHERE record_id = OLD.id; {_SQLITE_LINKS_OF_NEW} END""",
)
SQLITE_BACKFILL = """
    INSERT INTO record_links (record_id, registry, study_id)
    SELECT records.id, json_extract(value, '$.registry'), json_extract(value, '$.study_id')
    FROM records, json_each(records.links)
    WHERE records.links IS NOT NULL AND type = 'object'
      AND json_extract(value, '$.study_id') IS NOT NULL
      AND json_extract(value, '$.registry') IS NOT NULL
"""

POSTGRES_FUNCTION = """
CREATE FUNCTION record_links_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM record_links WHERE record_id = OLD.id;
    END IF;
    IF NEW.links IS NOT NULL AND json_typeof(NEW.links) = 'array' THEN
        INSERT INTO record_links (record_id, registry, study_id)
        SELECT NEW.id, link->>'registry', link->>'study_id'
        FROM json_array_elements(NEW.links) AS link
        WHERE json_typeof(link) = 'object'
          AND link->>'registry' IS NOT NULL AND link->>'study_id' IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGERS = (
    """CREATE TRIGGER record_links_insert AFTER INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION record_links_sync()""",
    """CREATE TRIGGER record_links_update AFTER UPDATE OF links ON records
    FOR EACH ROW WHEN (OLD.links::text IS DISTINCT FROM NEW.links::text)
    EXECUTE FUNCTION record_links_sync()""",
)
POSTGRES_BACKFILL = """
    INSERT INTO record_links (record_id, registry, study_id)
    SELECT records.id, link->>'registry', link->>'study_id'
    FROM records CROSS JOIN LATERAL json_array_elements(
        CASE WHEN json_typeof(records.links) = 'array' THEN records.links ELSE '[]'::json END
    ) AS link
    WHERE json_typeof(link) = 'object'
      AND link->>'registry' IS NOT NULL AND link->>'study_id' IS NOT NULL
"""


def upgrade() -> None:
    op.create_table(
        "record_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "record_id",
            sa.Integer(),
            sa.ForeignKey("records.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("registry", sa.String(16), nullable=False),
        sa.Column("study_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_record_links_named", "record_links", ["study_id", "registry"])
    op.create_index("ix_record_links_record_id", "record_links", ["record_id"])
    op.create_index("ix_records_study", "records", ["study_id"])
    op.create_index("ix_findings_state_id", "findings", ["state", sa.column("id").desc()])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        statements = (*POSTGRES_TRIGGERS, POSTGRES_BACKFILL)
    else:
        statements = (*SQLITE_TRIGGERS, SQLITE_BACKFILL)
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS record_links_update" + _on_records())
    op.execute("DROP TRIGGER IF EXISTS record_links_insert" + _on_records())
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS record_links_sync()")
    op.drop_index("ix_findings_state_id", "findings")
    op.drop_index("ix_records_study", "records")
    op.drop_table("record_links")


def _on_records() -> str:
    return " ON records" if op.get_bind().dialect.name == "postgresql" else ""
