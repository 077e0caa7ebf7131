"""The store's own facts (table ``meta``): its id, a UUID minted once per store by migration
0014, which the Atom feeds derive their ids from."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from service.errors import StoreError
from service.store.base import StoreBase
from service.store.tables import MetaRow

STORE_ID = "store_id"
LEGACY_UPTO = "legacy_entry_ids_upto"


class MetaStore(StoreBase):
    def store_id(self) -> uuid.UUID:
        """This store's UUID: the same at every call and in every process, another in every
        other store. Read once per ``Store`` (it never changes)."""
        cached: uuid.UUID | None = self.__dict__.get("_store_id")
        if cached is None:
            cached = self.__dict__["_store_id"] = self._read_or_mint()
        return cached

    def legacy_entry_ids_upto(self) -> int:
        """The last change stored before the feeds' ids were minted from the store's id: the
        entries up to it keep the ids readers already have (0: none)."""
        cached: int | None = self.__dict__.get("_legacy_upto")
        if cached is None:
            with self._session() as session:
                value = session.scalar(select(MetaRow.value).where(MetaRow.key == LEGACY_UPTO))
            cached = self.__dict__["_legacy_upto"] = int(value or 0)
        return cached

    def _read_or_mint(self) -> uuid.UUID:
        with self._session() as session:
            value = session.scalar(select(MetaRow.value).where(MetaRow.key == STORE_ID))
            if value is not None:
                return uuid.UUID(value)
        # a row deleted by hand: a new id (the feeds' readers see new entries, once)
        try:
            with self._session() as session:
                session.add(MetaRow(key=STORE_ID, value=str(uuid.uuid4())))
        except StoreError:
            pass  # another process minted it first: theirs stands
        with self._session() as session:
            return uuid.UUID(session.scalar(select(MetaRow.value).where(MetaRow.key == STORE_ID)))
