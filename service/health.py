"""``/healthz`` and ``/metrics`` on 127.0.0.1, for the daemon (an optional port).

``/healthz`` answers 200 from the moment the daemon runs (before the first sync the body says
so) and 503 once no sync has succeeded for longer than the schedule's tolerance (two
intervals): a liveness probe that catches a daemon which runs but no longer succeeds. The last
success is read from the store, so on several replicas it is the last success of any of them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.clock import Clock

log = logging.getLogger("trialwatch.health")


class HealthCheck:
    def __init__(
        self,
        last_success: Callable[[], datetime | None],
        tolerance: timedelta,
        clock: Clock,
    ) -> None:
        self.last_success = last_success
        self.tolerance = tolerance
        self.clock = clock
        self.started_at = clock()

    def verdict(self) -> tuple[int, dict[str, Any]]:
        now = self.clock()
        last = self.last_success()
        body: dict[str, Any] = {
            "started_at": self.started_at.isoformat(),
            "last_sync_success": last.isoformat() if last else None,
            "tolerance_seconds": int(self.tolerance.total_seconds()),
        }
        if last is not None and now - last <= self.tolerance:
            return 200, {"status": "ok", **body}
        if last is None and now - self.started_at <= self.tolerance:
            return 200, {"status": "starting", "detail": "no sync has finished yet", **body}
        since = last or self.started_at
        detail = f"no successful sync for {int((now - since).total_seconds())} s"
        return 503, {"status": "failing", "detail": detail, **body}


class HealthServer:
    """A small threaded HTTP server; ``stop()`` closes it."""

    def __init__(
        self, port: int, health: HealthCheck, metrics: Callable[[], bytes], host: str = "127.0.0.1"
    ) -> None:
        handler = _handler(health, metrics)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def probe(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> tuple[int, str]:
    """Ask a running daemon's /healthz: (status code, body); (0, reason) when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, f"no answer on {host}:{port}: {exc}"


def _handler(health: HealthCheck, metrics: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                code, body = health.verdict()
                self._answer(code, json.dumps(body).encode(), "application/json")
            elif path == "/metrics":
                self._answer(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._answer(404, b"not found: try /healthz or /metrics\n", "text/plain")

        def _answer(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
