"""Database fixtures: every store test runs on SQLite and on the real PostgreSQL.

PostgreSQL comes from ``TRIALWATCH_TEST_POSTGRES_URL`` (default: the local server at
127.0.0.1:5432, database ``test``). Each test gets a database of its own, dropped afterwards.
Where no server answers, the PostgreSQL half skips with a one-line reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get(
    "TRIALWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg

    url = make_url(POSTGRES_URL)
    return psycopg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        autocommit=True,
        connect_timeout=3,
    )


def postgres_unavailable() -> str | None:
    try:
        _admin_connection().close()
    except Exception as exc:
        return f"PostgreSQL at {make_url(POSTGRES_URL).render_as_string()} unreachable: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_reason() -> str | None:
    return postgres_unavailable()


@pytest.fixture
def postgres_url(postgres_reason: str | None) -> Iterator[str]:
    if postgres_reason:
        pytest.skip(postgres_reason.splitlines()[0])
    name = f"tw_test_{uuid.uuid4().hex[:12]}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'trialwatch.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty store URL: once SQLite, once PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(fixture)  # type: ignore[no-any-return]
