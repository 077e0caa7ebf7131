"""``/healthz``, ``/readyz`` and ``/metrics`` for the daemon (an optional port).

Two probes, as orchestrators expect:

- ``/healthz`` (liveness): 200 while the scheduler loop runs and the store answers, else 503.
  A registry that is down does not make the daemon dead: restarting it would not help.
- ``/readyz`` (is it doing its job): 200 once a sync has succeeded, while the last success is
  within the schedule's tolerance (two intervals) and the latest cycle did not fail as a
  whole; 503 before the first success and after a wholly failed cycle.

Both bodies tell the same truth: ``{"status", "detail", "last_sync": {"at", "outcome",
"failed", "error"}, "last_success_at", "next_sync_at", "checks", …}``. The last success is
read from the store, so on several replicas it is the last success of any of them; the latest
cycle is this daemon's own (a replica that skips cycles because another holds the lock has
none, and is ready on the others' successes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.clock import Clock
from service.errors import ConfigError, TrialwatchError

log = logging.getLogger("trialwatch.health")

JSON = "application/json"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class CycleResult:
    """How one sync cycle of this daemon ended."""

    at: datetime
    outcome: str  # ok | partial | failed
    checked: int = 0
    failed: int = 0
    error: str | None = None  # why a cycle failed as a whole

    @property
    def failed_wholly(self) -> bool:
        return self.outcome == "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "checked": self.checked,
            "failed": self.failed,
            "error": self.error,
        }


class SyncState:
    """What the daemon's sync job tells the probes, shared between the scheduler thread and
    the health server's threads (hence the lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: CycleResult | None = None
        self._failures = 0  # wholly failed cycles in a row

    def record(self, result: CycleResult) -> int:
        """Keep ``result``; returns how many cycles in a row have now failed as a whole."""
        with self._lock:
            self._last = result
            self._failures = self._failures + 1 if result.failed_wholly else 0
            return self._failures

    @property
    def last(self) -> CycleResult | None:
        with self._lock:
            return self._last

    @property
    def failures_in_a_row(self) -> int:
        with self._lock:
            return self._failures


class HealthCheck:
    """The verdicts of both probes. Every input is a callable, read at request time."""

    def __init__(
        self,
        *,
        state: SyncState,
        last_success: Callable[[], datetime | None],
        store_check: Callable[[], None],
        scheduler_running: Callable[[], bool] | None,
        next_sync_at: Callable[[], datetime | None],
        tolerance: timedelta,
        clock: Clock,
    ) -> None:
        self.state = state
        self.last_success = last_success
        self.store_check = store_check
        self.scheduler_running = scheduler_running
        self.next_sync_at = next_sync_at
        self.tolerance = tolerance
        self.clock = clock
        self.started_at = clock()

    def liveness(self) -> tuple[int, dict[str, Any]]:
        facts = self._facts()
        problem = facts.pop("_problem")
        if problem:
            return 503, {"status": "failing", "detail": problem, **facts}
        detail = (
            "the store answers (no scheduler in this process: `trialwatch serve`)"
            if self.scheduler_running is None
            else "the scheduler runs and the store answers"
        )
        return 200, {"status": "ok", "detail": detail, **facts}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        facts = self._facts()
        problem = facts.pop("_problem")
        if problem:
            return 503, {"status": "failing", "detail": problem, **facts}
        status, detail = self._sync_verdict(self.state.last, facts["last_success_at"])
        return (200 if status == "ok" else 503), {"status": status, "detail": detail, **facts}

    def _sync_verdict(self, last: CycleResult | None, success_at: str | None) -> tuple[str, str]:
        """(status, detail) of the syncs: ok, starting, failing or stale."""
        success = datetime.fromisoformat(success_at) if success_at else None
        if last is not None and last.failed_wholly and (success is None or success < last.at):
            return "failing", f"the last sync failed as a whole: {last.error or 'every study'}"
        if success is None:
            return "starting", "no sync has succeeded yet; the first cycle is running"
        age = self.clock() - success
        if age > self.tolerance:
            tolerance = int(self.tolerance.total_seconds())
            return "stale", f"no successful sync for {int(age.total_seconds())} s (> {tolerance} s)"
        return "ok", "the last sync succeeded"

    def _facts(self) -> dict[str, Any]:
        """The body both probes share, and ``_problem``: why the daemon is not alive."""
        scheduler = self.scheduler_running
        alone = scheduler is None  # `serve`: the daemon runs elsewhere, if at all
        running = scheduler is None or scheduler()
        store, success = self._store_facts()
        problem = None if running else "the scheduler loop is not running"
        if store != "ok":
            problem = problem or f"the store does not answer: {store}"
        last = self.state.last
        next_at = self.next_sync_at() if running else None
        return {
            "_problem": problem,
            "last_sync": last.to_json() if last else None,
            "last_success_at": success.isoformat() if success else None,
            "next_sync_at": next_at.isoformat() if next_at else None,
            "failed_cycles_in_a_row": self.state.failures_in_a_row,
            "started_at": self.started_at.isoformat(),
            "tolerance_seconds": int(self.tolerance.total_seconds()),
            "checks": {
                "scheduler": "elsewhere" if alone else "running" if running else "stopped",
                "store": store,
            },
        }

    def _store_facts(self) -> tuple[str, datetime | None]:
        """("ok" or why the store does not answer, the last success of any replica)."""
        try:
            self.store_check()
            return "ok", self.last_success()
        except TrialwatchError as exc:
            return str(exc), None
        except Exception as exc:  # a probe must answer, whatever the store raised
            return f"{type(exc).__name__}: {exc}", None


PUBLIC_DETAILS = {
    "ok": "ok",
    "starting": "no sync has succeeded yet",
    "stale": "no recent successful sync",
    "failing": "failing: see the service's log",
}


def public_body(body: dict[str, Any]) -> dict[str, Any]:
    """A probe's body for anyone who asks (a web app with a token leaves its probes open):
    the same fields and verdicts, without the words that may name the store's file, database
    URL or a host (the store's error, the failed cycle's error, the detail quoting them)."""
    shown = dict(body)
    shown["detail"] = PUBLIC_DETAILS.get(str(body.get("status")), "see the service's log")
    checks = dict(body.get("checks") or {})
    if "store" in checks:
        checks["store"] = "ok" if checks["store"] == "ok" else "failing"
    shown["checks"] = checks
    last = body.get("last_sync")
    if isinstance(last, dict) and last.get("error"):
        shown["last_sync"] = {**last, "error": "failed: see the service's log"}
    return shown


class HealthServer:
    """A small threaded HTTP server; ``stop()`` closes it."""

    def __init__(
        self, port: int, health: HealthCheck, metrics: Callable[[], bytes], host: str = "127.0.0.1"
    ) -> None:
        handler = _handler(health, metrics)
        self.server = _bind(host, port, handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = host
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        log.info(
            "health on http://%s:%d/healthz and /readyz, metrics on /metrics", self.host, self.port
        )
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _bind(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """The listening server; a port in use or a host that is not this machine's is a
    ``ConfigError`` (one line, exit 2) naming both, not a traceback from the daemon."""
    try:
        return ThreadingHTTPServer((host, port), handler)
    except (OSError, OverflowError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"setting daemon.health_port/health_host: cannot listen on {host}:{port} ({reason})"
        ) from None


def probe_host(host: str) -> str:
    """Where a local health check finds a daemon bound to ``host``: a wildcard address is
    reached on loopback."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def probe(
    port: int, host: str = "127.0.0.1", *, ready: bool = False, timeout: float = 5.0
) -> tuple[int, str]:
    """Ask a running daemon's /healthz (or /readyz): (status code, body); (0, reason) when
    nothing answers."""
    import urllib.error
    import urllib.request

    name = f"[{host}]" if ":" in host else host
    path = "/readyz" if ready else "/healthz"
    try:
        with urllib.request.urlopen(f"http://{name}:{port}{path}", timeout=timeout) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, f"no answer on {name}:{port}{path}: {exc}"


def _handler(health: HealthCheck, metrics: Callable[[], bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                code, body, content_type = _route(path, health, metrics)
            except Exception as exc:  # an answer, never a closed connection
                log.error("%s failed: %s", path, exc)
                code, content_type = 503, "text/plain; charset=utf-8"
                body = f"unavailable: {exc}\n".encode()
            self._answer(code, body, content_type)

        def _answer(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _route(path: str, health: HealthCheck, metrics: Callable[[], bytes]) -> tuple[int, bytes, str]:
    if path == "/healthz":
        code, body = health.liveness()
        return code, json.dumps(body).encode(), JSON
    if path == "/readyz":
        code, body = health.readiness()
        return code, json.dumps(body).encode(), JSON
    if path == "/metrics":
        try:
            return 200, metrics(), PROMETHEUS
        except TrialwatchError as exc:  # the store's gauges are read at scrape time
            return 503, f"# store unavailable: {exc}\n".encode(), PROMETHEUS
    return 404, b"not found: try /healthz, /readyz or /metrics\n", "text/plain"
