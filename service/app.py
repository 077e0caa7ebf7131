"""``build_app(settings)``: the only place that constructs the engine, clients and services.

Parts are built on first use, so a command that needs no store (``diff``) opens none and one
that needs no registry opens no connection.
"""

from __future__ import annotations

from functools import cached_property

import httpx

from service.clock import Clock, utcnow
from service.monitor import Monitor
from service.registry.ctgov import CtgovClient, build_http_client
from service.settings import Settings
from service.store import Store


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        http: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._http = http

    @cached_property
    def store(self) -> Store:
        return Store.open(self.settings.database.url)

    @cached_property
    def http(self) -> httpx.Client:
        return self._http or build_http_client(self.settings.ctgov)

    @cached_property
    def ctgov(self) -> CtgovClient:
        return CtgovClient(self.http, self.settings.ctgov)

    @cached_property
    def monitor(self) -> Monitor:
        return Monitor(self.store, self.ctgov, clock=self.clock)

    def close(self) -> None:
        if "http" in self.__dict__ and self._http is None:
            self.http.close()
        if "store" in self.__dict__:
            self.store.close()


def build_app(settings: Settings, *, clock: Clock = utcnow) -> App:
    return App(settings, clock=clock)
