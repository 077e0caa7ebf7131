"""The tables, by family (created by the Alembic migrations in ``service/migrations``, never
by ``create_all``; ``Base.metadata`` holds every one of them, for the migrations' check).

Records: ``watches`` (what users asked to follow), ``records`` (one row per registry record
seen, with the hash of its latest version), ``record_versions`` (every distinct normalised
snapshot, with the raw record compressed). Changes: ``changes`` (change events) and
``sync_runs``. Outbox: ``outbox`` and ``outbox_changes``. Findings: ``findings``. Saved
searches: ``searches`` and ``search_matches``. Seeds: ``seeds`` and ``seed_links``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.store.base import Base, UTCDateTime

# ---- records and versions -------------------------------------------------------------------


class WatchRow(Base):
    __tablename__ = "watches"
    __table_args__ = (UniqueConstraint("registry", "study_id", name="uq_watches_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    tags: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # an id the registry says it never had: first reported then, last asked then (0013)
    not_found_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_found_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecordRow(Base):
    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("registry", "study_id", name="uq_records_study"),
        Index("ix_records_last_changed", "last_changed_at", "study_id"),
        Index("ix_records_status", "overall_status", "study_id"),
        Index("ix_records_study", "study_id"),  # by study id alone: --study, the web's filters
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    overall_status: Mapped[str] = mapped_column(String(40), default="")
    state: Mapped[str] = mapped_column(String(16), default="active")
    content_hash: Mapped[str | None] = mapped_column(String(64))
    latest_seq: Mapped[int] = mapped_column(Integer, default=0)
    latest_registry_version: Mapped[int | None] = mapped_column(Integer)
    last_update_posted: Mapped[str] = mapped_column(String(10), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    served_id: Mapped[str | None] = mapped_column(String(64))  # the id an alias answer carried
    backfill: Mapped[str | None] = mapped_column(String(16), index=True)  # pending|done|failed
    backfill_error: Mapped[str | None] = mapped_column(Text)
    backfill_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    findings_due: Mapped[str | None] = mapped_column(String(10), index=True)  # yyyy-MM-dd
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last fetched whole
    # of the latest version: its lifecycle and the registrations it names
    lifecycle: Mapped[str] = mapped_column(String(24), default="")
    links: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)


class RecordLinkRow(Base):
    """A registration a record's latest version names (``records.links``, one row each): the
    database keeps these by triggers on ``records`` (migration 0015), so "which records name
    this id?" is an index lookup, not a pass over every record's JSON."""

    __tablename__ = "record_links"
    __table_args__ = (Index("ix_record_links_named", "study_id", "registry"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))


class VersionRow(Base):
    __tablename__ = "record_versions"
    __table_args__ = (
        UniqueConstraint("record_id", "seq", name="uq_record_versions_seq"),
        # a registry version is stored once per record, however many syncs race for it
        # (several NULLs, for versions without a registry number, stay allowed); an index, not
        # a constraint, because SQLite adds one without rebuilding the table
        Index("uq_record_versions_registry", "record_id", "registry_version", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    registry_version: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[str] = mapped_column(Text)
    raw_gz: Mapped[bytes] = mapped_column(LargeBinary)
    last_update_posted: Mapped[str] = mapped_column(String(10), default="")
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- changes and sync runs -----------------------------------------------------------------


class SyncRunRow(Base):
    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # whose cycle: each registry's cycles are the base of its own next one
    registry_key: Mapped[str] = mapped_column("registry", String(16), default="ctgov")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="running")
    checked: Mapped[int] = mapped_column(Integer, default=0)
    new: Mapped[int] = mapped_column(Integer, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    mode: Mapped[str | None] = mapped_column(String(16))  # probe | listing | quiet (whole list)
    registry_timestamp: Mapped[str | None] = mapped_column(String(40))  # /version dataTimestamp
    since: Mapped[str | None] = mapped_column(String(10))  # the listing's first day


class ChangeRow(Base):
    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_kind_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    sync_run_id: Mapped[int | None] = mapped_column(ForeignKey("sync_runs.id"))
    to_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("record_versions.id", ondelete="CASCADE")
    )
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(255))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    severity: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    outcome_type: Mapped[str | None] = mapped_column(String(16))
    old_field: Mapped[str | None] = mapped_column(String(255))  # outcome kinds: old position
    grade: Mapped[str | None] = mapped_column(String(16))  # outcome kinds: editorial|minor|major
    historical: Mapped[bool] = mapped_column(Boolean, default=False)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# ---- outbox ---------------------------------------------------------------------------------


class OutboxRow(Base):
    """One notification to deliver: the changes of one study for one channel.

    Digest rows of one channel and due time share a ``group_key`` and go out as one message.
    The event id of an immediate row is set when it is queued; digest rows get theirs when
    first claimed together, so a retry repeats the same set under the same id and a row that
    joins the group later goes out under another.
    """

    __tablename__ = "outbox"
    # a study's pending message to a channel, which the changes of the same sync join
    __table_args__ = (Index("ix_outbox_record_channel", "record_id", "channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(16))
    group_key: Mapped[str] = mapped_column(String(200), index=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")


class OutboxChangeRow(Base):
    """Which changes a notification carries; a change is queued once per channel, ever."""

    __tablename__ = "outbox_changes"
    __table_args__ = (UniqueConstraint("channel", "change_id", name="uq_outbox_changes_channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), index=True)
    change_id: Mapped[int] = mapped_column(ForeignKey("changes.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))


# ---- findings -------------------------------------------------------------------------------


class FindingRow(Base):
    """One time a transparency rule held for a record: open, then resolved (a rule that holds
    again later opens a new row)."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved
    severity: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[Any] = mapped_column(JSON, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    historical: Mapped[bool] = mapped_column(Boolean, default=False)


# open first, newest first: the order of /findings (and, reversed, of a previous page)
Index("ix_findings_state_id", FindingRow.state, FindingRow.id.desc())


# ---- saved searches -------------------------------------------------------------------------


class SearchRow(Base):
    """A saved search: registry query parameters (``query.cond`` …), refreshed every cycle."""

    __tablename__ = "searches"
    __table_args__ = (UniqueConstraint("name", name="uq_searches_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    name: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_stamp: Mapped[str | None] = mapped_column(String(40))  # registry data timestamp


class SearchMatchRow(Base):
    __tablename__ = "search_matches"
    __table_args__ = (UniqueConstraint("search_id", "study_id", name="uq_search_matches_study"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    study_id: Mapped[str] = mapped_column(String(64))
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- seeds ----------------------------------------------------------------------------------


class SeedRow(Base):
    __tablename__ = "seeds"
    __table_args__ = (UniqueConstraint("seed_id", name="uq_seeds_seed_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    document: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SeedLinkRow(Base):
    __tablename__ = "seed_links"
    __table_args__ = (
        UniqueConstraint("seed_row_id", "registry", "study_id", name="uq_seed_links_study"),
        Index("ix_seed_links_registry_study", "registry", "study_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed_row_id: Mapped[int] = mapped_column(ForeignKey("seeds.id", ondelete="CASCADE"), index=True)
    registry_key: Mapped[str] = mapped_column("registry", String(16))
    study_id: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    from_file: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- the store itself ------------------------------------------------------------------------


class MetaRow(Base):
    """Facts about the store itself, by key: ``store_id``, a UUID minted once when the store
    is made (the Atom feeds' entry ids are derived from it, so two stores never share one)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# ---- the tables as Core sees them ------------------------------------------------------------

# For the statements every cycle runs: an ORM-enabled statement costs a one-shot process its
# compile step and result processing on top (~1 ms a statement; ~10 ms a sync in all).
WATCHES = WatchRow.__table__
RECORDS = RecordRow.__table__
VERSIONS = VersionRow.__table__
CHANGES = ChangeRow.__table__
FINDINGS = FindingRow.__table__
SYNC_RUNS = SyncRunRow.__table__
RECORD_LINKS = RecordLinkRow.__table__
