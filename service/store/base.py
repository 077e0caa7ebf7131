"""What every part of the store shares: the declarative base and the UTC column type, the
engine, and the unit of work (``StoreBase._session``) each method of the store runs in."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from sqlalchemy import (
    DateTime,
    Dialect,
    Engine,
    TypeDecorator,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from service.errors import StoreError, StoreTimeout
from service.urls import mask_url

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"

log = logging.getLogger("service.store")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def database_url(url: str) -> str:
    """psycopg 3 is the PostgreSQL driver trialwatch installs; plain URLs mean it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: the pragmas below may need a lock
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints instead of at every commit: a crash cannot corrupt
    # the store, and a power cut loses at most the last transactions (a sync redoes them).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_store_engine(
    url: str, *, statement_timeout: float | None = None, pool_size: int | None = None
) -> Engine:
    """The engine of a store. ``statement_timeout`` (seconds; the web app's reads): a statement
    running longer is stopped and raises ``StoreTimeout``. ``pool_size``: connections kept,
    and never more (the web app sizes it to its page workers); None: SQLAlchemy's default."""
    url = database_url(url)
    parsed = make_url(url)
    pool: dict[str, Any] = {} if pool_size is None else {"pool_size": pool_size, "max_overflow": 0}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, **(pool if parsed.database not in (None, "", ":memory:") else {})
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        if statement_timeout is not None:
            _sqlite_statement_deadline(engine, statement_timeout)
        return engine
    if statement_timeout is not None:
        # the server stops the statement itself (SQLSTATE 57014), whatever the client does
        milliseconds = max(1, round(statement_timeout * 1000))
        pool["connect_args"] = {"options": f"-c statement_timeout={milliseconds}"}
    return create_engine(url, pool_pre_ping=True, **pool)


def _sqlite_statement_deadline(engine: Engine, seconds: float) -> None:
    """SQLite has no statement timeout: a progress handler, called every few thousand steps
    of the statement's virtual machine, interrupts it once the deadline set when it started
    has passed (``sqlite3.OperationalError: interrupted``). The deadline is per connection
    and cleared at the end of each transaction, so a commit or rollback is never cut short."""

    def install(dbapi_connection: Any, record: Any) -> None:
        info = record.info
        info["deadline"] = math.inf
        dbapi_connection.set_progress_handler(
            lambda: 1 if time.monotonic() > info["deadline"] else 0, 2_000
        )

    def start(connection: Any, *_args: Any) -> None:
        connection.info["deadline"] = time.monotonic() + seconds

    def clear(connection: Any, *_args: Any) -> None:
        connection.info["deadline"] = math.inf

    event.listen(engine, "connect", install)
    event.listen(engine, "before_cursor_execute", start)
    for name in ("commit", "rollback"):
        event.listen(engine, name, clear)


def shown_url(engine: Engine) -> str:
    # hide_password covers user:PASSWORD@ only; libpq also takes ?password=… in the query
    return mask_url(engine.url.render_as_string(hide_password=True))


class StoreBase:
    """The engine and the unit of work every part of the store runs in. Methods are units of
    work: each commits or rolls back as a whole."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._file_identity: tuple[int, int] | None = None  # SQLite: (device, inode) when seen

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Self:
        store = cls(create_store_engine(url))
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        from service.migrate import upgrade

        try:
            upgrade(self.engine)
        except OperationalError as exc:
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            if _timed_out(exc):
                raise StoreTimeout(
                    "the store took longer than its statement timeout to answer "
                    "([web] statement_timeout_seconds): try again, or narrow the filters"
                ) from exc
            raise StoreError(f"store {shown_url(self.engine)}: {_first_line(exc)}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @property
    def one_database_per_thread(self) -> bool:
        """An in-memory SQLite store: each thread's connection is a database of its own, so
        its work must stay on one thread."""
        url = self.engine.url
        return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")

    def check(self) -> None:
        """Raise ``StoreError`` unless the store answers — and, for a SQLite file, unless it
        is still the file this process opened: one deleted (or replaced) under a running
        daemon would otherwise take every later write with it, silently."""
        path = _sqlite_file(self.engine)
        if path is not None:
            self._check_file(path)
        with self._session() as session:
            session.execute(text("SELECT 1"))

    def _check_file(self, path: Path) -> None:
        where = f"store {shown_url(self.engine)}"
        try:
            stat = path.stat()
        except OSError:
            raise StoreError(
                f"{where}: the database file {path} is gone (deleted while trialwatch ran); "
                "restore it, or restart to create a new store"
            ) from None
        identity = (stat.st_dev, stat.st_ino)
        if self._file_identity is None:
            self._file_identity = identity
        elif identity != self._file_identity:
            raise StoreError(
                f"{where}: the database file {path} was replaced while trialwatch ran; "
                "restart to use the new one"
            )


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__


def _timed_out(exc: SQLAlchemyError) -> bool:
    """Whether a statement was stopped by its statement timeout: PostgreSQL's query_canceled,
    SQLite's interrupt from the progress handler (only the web app's engines set either)."""
    original = getattr(exc, "orig", None)
    if getattr(original, "sqlstate", None) == "57014":
        return True
    return isinstance(exc, OperationalError) and str(original) == "interrupted"


def _clash(exc: StoreError) -> bool:
    """Whether a failed write hit a unique constraint (another process wrote the same row
    first), rather than any other integrity error (a NOT NULL: a bug, not a race)."""
    cause = exc.__cause__
    if not isinstance(cause, IntegrityError):
        return False
    original = cause.orig
    return getattr(original, "sqlstate", None) == "23505" or "UNIQUE constraint" in str(original)


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite store (None for PostgreSQL and in-memory stores)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(os.path.abspath(url.database))
