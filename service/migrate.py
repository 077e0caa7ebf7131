"""Alembic, driven from code: bring a store's schema to the newest migration.

Every command calls ``upgrade`` through ``Store.open``. A store already at ``HEAD`` costs one
query and no Alembic import (Alembic takes ~0.3 s to import, a third of a short command's
start-up); only a store that is behind, or new, runs the migrations.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from service.store import MIGRATIONS_DIR

HEAD = "0015"  # the newest migration; tests/test_store.py checks it against the scripts


def upgrade(engine: Engine) -> None:
    if stored_revision(engine) != HEAD:
        from alembic import command

        command.upgrade(alembic_config(engine), "head")


def stored_revision(engine: Engine) -> str | None:
    """The store's revision, or None for a store without one (new, or never migrated)."""
    try:
        with engine.connect() as connection:
            return connection.scalar(text("SELECT version_num FROM alembic_version"))
    except DBAPIError as exc:
        if "alembic_version" in str(exc):  # no such table: a new store
            return None
        raise


def alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
