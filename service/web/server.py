"""The web app on uvicorn: in the foreground for ``trialwatch serve``, or on a thread beside
the daemon's scheduler.

The socket is bound here, before uvicorn starts, so that a port in use or an address that is
not this machine's is one ``ConfigError`` line (exit 2) instead of uvicorn's log and exit 1.
Its limits (connections, header and keep-alive deadlines, open files) are ``limits``'s; its
pages read through a store of their own whose statements have a deadline
(``[web] statement_timeout_seconds``) and whose pool is as large as the page workers.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from service.errors import ConfigError
from service.web.limits import (
    KEEP_ALIVE_SECONDS,
    LISTEN_BACKLOG,
    MAX_HEADER_BYTES,
    connection_cap,
    guarded_protocol,
    raise_open_files_limit,
    throttle_accept_errors,
)
from service.web.security import allowed_hosts, is_loopback, web_token

if TYPE_CHECKING:
    import uvicorn

    from service.app import App
    from service.health import HealthCheck
    from service.store import Store

log = logging.getLogger("trialwatch.web")

DEFAULT_PORT = 8080


class WebServer:
    """One uvicorn server on one bound socket."""

    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        *,
        environ: Mapping[str, str],
        health: HealthCheck | None = None,
    ) -> None:
        import uvicorn

        from service.web.app import PAGE_WORKERS, create_app

        settings = app.settings.web
        token = web_token(settings, host, environ)
        cap = connection_cap(settings.max_connections, raise_open_files_limit())
        throttle_accept_errors()
        self.socket = bind(host, port)
        self.host, self.port = host, self.socket.getsockname()[1]
        self.reader = reading_store(app, settings.statement_timeout_seconds, PAGE_WORKERS)
        app.store.refresh_planner_statistics()
        web = create_app(
            app,
            token=token,
            health=health,
            reader=self.reader,
            site_url=settings.public_url.rstrip("/") or site_url(host, self.port),
            hosts=None if token else allowed_hosts(host),
        )
        config = uvicorn.Config(
            web,
            http=guarded_protocol(cap, settings.header_timeout_seconds),
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # X-Forwarded-For must not make a remote client look local
            server_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            backlog=LISTEN_BACKLOG,
        )
        self.server: uvicorn.Server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.protected = token is not None

    @property
    def url(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{name}:{self.port}/"

    def announce(self) -> None:
        # news, not a warning: a log watcher alerting on WARNING must not page for a start
        guard = "token required" if self.protected else "loopback only, no token"
        log.info("web app on %s (%s)", self.url, guard)

    def serve_forever(self) -> None:
        """Serve until SIGINT/SIGTERM (uvicorn's own handlers), then close."""
        # in the foreground the address is what the user waits for, whatever the log level
        log.setLevel(min(log.getEffectiveLevel(), logging.INFO))
        self.announce()
        # uvicorn shuts down gracefully on a signal, then raises it again for the handler it
        # found: with these, that ends the command with exit 0 instead of death by signal
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _exit_quietly)
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()
            self.reader.close()

    def start(self) -> WebServer:
        """Serve on a thread (the daemon): ``stop()`` ends it."""
        # uvicorn installs its signal handlers only on the main thread: the daemon keeps its own
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True, name="web"
        )
        self._thread.start()
        self.announce()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.socket.close()
        self.reader.close()


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def reading_store(app: App, statement_timeout: float, workers: int) -> Store:
    """The store the pages read through: the same database on an engine of its own, whose
    statements stop after ``statement_timeout`` seconds and whose pool holds one connection
    per page worker, so that neither a slow page nor a crowd of them takes the connections
    the probes and the daemon's cycle use."""
    from service.store import Store, create_store_engine

    engine = create_store_engine(
        app.settings.database.url, statement_timeout=statement_timeout, pool_size=workers
    )
    return Store(engine)


def site_url(host: str, port: int) -> str:
    """Where links point when ``[web] public_url`` is not set: the bound address (this
    machine's name for a wildcard one), never the ``Host`` a request names."""
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = socket.gethostname()
    name = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{name}:{port}"


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(LISTEN_BACKLOG)  # held by the kernel until accepted: no descriptor yet
    except (OSError, OverflowError, UnicodeError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"web: cannot listen on {host}:{port} ({reason})") from None
    sock.set_inheritable(True)
    return sock


__all__ = ["DEFAULT_PORT", "WebServer", "bind", "is_loopback"]
