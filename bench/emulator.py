"""A lean ClinicalTrials.gov emulator for the benchmark: 100,000 studies in a few tens of MB.

``tests/ctgov_emulator.py`` keeps every version of every study as parsed JSON: right for the
tests, but 100,000 realistic studies would take several GB there and every ``filter.ids`` page
would scan them all. This wrapper reuses that emulator's HTTP server, request statistics,
fault injection and ``/_emu/`` control API, and swaps only the study store and the API
endpoints the benchmark uses:

- studies stay on disk as the JSON lines ``bench/generate.py`` wrote; memory holds an index
  (id → offset, length, last-update date), a few hundred bytes a study;
- ``GET /api/v2/studies`` with ``filter.ids`` (and ``fields``, ``pageSize``, ``pageToken``,
  ``countTotal``, ``format``), answered by splicing the stored bytes; a probe page
  (``fields=NCTId,LastUpdatePostDate``) is built from the index without reading a record;
- the changed-since listing of incremental cycles
  (``filter.advanced=AREA[LastUpdatePostDate]RANGE[day,MAX]``), from the index's dates;
- searches (``query.cond``, ``query.intr``, ``query.term``, other ``filter.advanced``
  expressions), with the tests' emulator's Essie-lite over what the index keeps of a study:
  its id, last-update date, conditions, keywords and intervention names (so ``query.cond``
  misses what only a title or a MeSH term would match; ``query.term`` searches those fields
  only). A search is worked out over every record the first time it is asked, then kept
  up to date by each publish;
- ``GET /api/v2/studies/{id}`` and ``GET /api/v2/version``;
- ``POST /_emu/publish`` writes the new version to a temporary file and points the index at it;
  ``POST /_emu/latency {"seconds": s}`` sets the delay of every API answer.

Other ``query.*`` parameters, the history API, aliases and retired records are not served
(400/404 saying so): the benchmark runs trialwatch with ``[ctgov] history = false``.
``GET /_emu/kinds`` counts the API requests by kind since the last ``reset_stats``:
``version``, ``listing`` (changed-since), ``search`` (a ``query.*`` or other
``filter.advanced``), ``ids`` (``filter.ids`` pages: fetches and probes), ``study`` (one id).

    .venv/bin/python bench/emulator.py --data DIR [--port 0] [--port-file F] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import bisect
import importlib.util
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _load_emulator_module() -> ModuleType:
    """``tests/ctgov_emulator.py`` by path: ``tests`` is not a package."""
    name = "ctgov_emulator"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "ctgov_emulator.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


emu = _load_emulator_module()
Response = emu.Response
ApiError = emu.ApiError

# What the lean API answers; anything else on /studies is a 400 naming the parameter.
LEAN_STUDIES_PARAMS = frozenset(
    {
        "format",
        "markupFormat",
        "filter.ids",
        "filter.advanced",
        "fields",
        "pageSize",
        "pageToken",
        "countTotal",
        "query.cond",
        "query.intr",
        "query.term",
    }
)
SEARCH_PARAMS = ("query.cond", "query.intr", "query.term")
# the one Essie form served here: the changed-since listing of incremental cycles
CHANGED_SINCE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),\s*MAX\]")
PROBE_PIECES = frozenset({"nctid", "lastupdatepostdate"})


@dataclass(frozen=True)
class Entry:
    """Where the current version of a study lies: file 0 is the dataset, 1 the published."""

    file: int
    offset: int
    length: int
    posted: str
    version: int
    terms: str = ""  # conditions, keywords, intervention names: "|"-joined, tab between


def terms_of(study: Mapping[str, Any]) -> str:
    """What the index keeps of a published study for searches (as ``generate.index_line``)."""
    ps = study.get("protocolSection") or {}
    module = ps.get("conditionsModule") or {}
    interventions = (ps.get("armsInterventionsModule") or {}).get("interventions") or []
    groups = (
        module.get("conditions") or [],
        module.get("keywords") or [],
        [item.get("name", "") for item in interventions if isinstance(item, dict)],
    )
    return "\t".join(
        "|".join(" ".join(str(term).replace("|", " ").split()) for term in group)
        for group in groups
    )


def searchable(nct: str, entry: Entry) -> dict[str, Any]:
    """The study as far as the index knows it: what searches look at."""
    conditions, keywords, interventions = ([*entry.terms.split("\t"), "", "", ""])[:3]
    return {
        "protocolSection": {
            "identificationModule": {"nctId": nct},
            "statusModule": {"lastUpdatePostDateStruct": {"date": entry.posted}},
            "conditionsModule": {
                "conditions": [c for c in conditions.split("|") if c],
                "keywords": [k for k in keywords.split("|") if k],
            },
            "armsInterventionsModule": {
                "interventions": [{"name": n} for n in interventions.split("|") if n]
            },
        }
    }


class LeanStore:
    """The index of a dataset directory plus versions published since the start."""

    def __init__(self, data_dir: Path) -> None:
        self._lock = threading.Lock()
        # Published versions go to an unlinked temp file: gone with the process, whatever ends it
        published, path = tempfile.mkstemp(prefix="bench-emulator-")
        os.unlink(path)
        self._files = [os.open(data_dir / "studies.jsonl", os.O_RDONLY), published]
        self._published_end = 0
        self._index: dict[str, Entry] = {}
        with (data_dir / "index.tsv").open() as index:
            for line in index:
                nct, offset, length, posted, *terms = line.rstrip("\n").split("\t")
                terms_text = "\t".join(terms)
                self._index[nct] = Entry(0, int(offset), int(length), posted, 0, terms_text)
        self._sorted: list[str] | None = None
        # the searches asked so far: their clauses and matches, kept up to date by publish
        self._searches: dict[str, tuple[list[tuple[Any, tuple[str, ...]]], list[str]]] = {}
        self.data_timestamp = "2025-12-31T09:00:00"  # moves with every publish, as a refresh

    def __len__(self) -> int:
        return len(self._index)

    def entry(self, nct: str) -> Entry | None:
        return self._index.get(nct)

    def body(self, entry: Entry) -> bytes:
        """The stored JSON of one version (pread: safe from any server thread)."""
        return os.pread(self._files[entry.file], entry.length, entry.offset)

    def ids(self) -> list[str]:
        """Every id in order (built once, only if a page without ``filter.ids`` asks)."""
        with self._lock:
            if self._sorted is None:
                self._sorted = sorted(self._index)
            return self._sorted

    def publish(self, study: Mapping[str, Any], when: str | None) -> tuple[str, int]:
        """Store ``study`` as the next version of its record, dated ``when`` (default: the day
        after the current version); returns ``(nct, version)``."""
        nct = emu.nct_of(study)
        with self._lock:
            current = self._index.get(nct)
            when = emu.check_date(when) if when else _next_day(current)
            served = dict(study)
            served["protocolSection"] = dict(served["protocolSection"])
            status = dict(served["protocolSection"].get("statusModule", {}))
            status["lastUpdatePostDateStruct"] = {"date": when, "type": "ACTUAL"}
            served["protocolSection"]["statusModule"] = status
            body = json.dumps(served, ensure_ascii=False, separators=(",", ":")).encode()
            os.pwrite(self._files[1], body, self._published_end)
            version = current.version + 1 if current else 0
            entry = Entry(1, self._published_end, len(body), when, version, terms_of(served))
            self._index[nct] = entry
            self._searched_again(nct, entry)
            self._published_end += len(body)
            self.data_timestamp = max(
                self.data_timestamp, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
            )
            if current is None:
                self._sorted = None
            return nct, version

    def posted_since(self, day: str) -> list[str]:
        """The ids last posted on or after ``day``, in order."""
        with self._lock:
            return sorted(nct for nct, entry in self._index.items() if entry.posted >= day)

    def search(self, clauses: list[tuple[Any, tuple[str, ...]]], key: str) -> list[str]:
        """The ids matching every ``(parsed expression, search areas)`` clause, in order. A
        search is worked out over every record the first time it is asked (~3 s for
        120,000), then kept and brought up to date by each publish, as the registry's own
        index is: asking again costs what a page costs."""
        with self._lock:
            cached = self._searches.get(key)
            if cached is None:
                found = sorted(n for n, e in self._index.items() if _matches(clauses, n, e))
                self._searches[key] = cached = (clauses, found)
            return list(cached[1])

    def _searched_again(self, nct: str, entry: Entry) -> None:
        """A new version of ``nct``: in or out of each kept search (under the lock)."""
        for clauses, found in self._searches.values():
            at = bisect.bisect_left(found, nct)
            listed = at < len(found) and found[at] == nct
            if _matches(clauses, nct, entry) and not listed:
                found.insert(at, nct)
            elif listed and not _matches(clauses, nct, entry):
                del found[at]


def _matches(clauses: list[tuple[Any, tuple[str, ...]]], nct: str, entry: Entry) -> bool:
    matcher = emu._Matcher(searchable(nct, entry))
    return all(matcher.matches(node, areas) for node, areas in clauses)


def _next_day(current: Entry | None) -> str:
    """A new version is posted today, as the registry posts them (or the day after the
    current one, should that be later)."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    if current is None:
        return today
    return max(today, (date.fromisoformat(current.posted) + timedelta(days=1)).isoformat())


class LeanApi:
    """The endpoints the benchmark needs, over a ``LeanStore`` (same errors as the emulator)."""

    def __init__(self, store: LeanStore) -> None:
        self.store = store
        self._kinds_lock = threading.Lock()
        self.kinds: dict[str, int] = {}

    def handle(self, path: str, params: dict[str, str]) -> Any:
        self._count(path, params)
        try:
            return self._route(path, params)
        except ApiError as exc:
            return Response.text(exc.status, exc.message)

    def _count(self, path: str, params: dict[str, str]) -> None:
        """Counts each API request by kind (``GET /_emu/kinds``)."""
        if path == "/api/v2/studies":
            advanced = params.get("filter.advanced", "").strip()
            if advanced and CHANGED_SINCE.fullmatch(advanced) and not _searches(params):
                kind = "listing"
            elif advanced or _searches(params):
                kind = "search"
            else:
                kind = "ids"
        else:
            kind = "version" if path == "/api/v2/version" else "study"
        with self._kinds_lock:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def reset_kinds(self) -> None:
        with self._kinds_lock:
            self.kinds.clear()

    def _route(self, path: str, params: dict[str, str]) -> Any:
        if path == "/api/v2/version":
            stamp = self.store.data_timestamp
            return Response.json({"apiVersion": emu.API_VERSION, "dataTimestamp": stamp})
        if path == "/api/v2/studies":
            return self.search(params)
        prefix = "/api/v2/studies/"
        if path.startswith(prefix) and "/" not in path[len(prefix) :]:
            return self.study(path[len(prefix) :], params)
        return Response.text(404, "Not Found (the bench emulator serves API v2 studies only)")

    def study(self, raw_id: str, params: dict[str, str]) -> Any:
        emu._check_known(params, emu.STUDY_PARAMS)
        emu._check_format(params)
        nct = emu._parse_nct(raw_id)
        entry = self.store.entry(nct)
        if entry is None:
            raise ApiError(404, f"NCT number {nct} not found")
        names = emu._field_names(params.get("fields"))
        return Response(200, self._piece(nct, entry, names), "application/json")

    def search(self, params: dict[str, str]) -> Any:
        emu._check_known(params, LEAN_STUDIES_PARAMS)
        emu._check_format(params)
        size = emu._page_size(params.get("pageSize"))
        names = emu._field_names(params.get("fields"))
        digest = emu._query_digest(params)
        token = params.get("pageToken")
        offset = emu._decode_token(token, digest) if token else 0
        ids = self._matching(params)
        page = ids[offset : offset + size]
        parts = [self._piece(nct, entry, names) for nct in page if (entry := self.store.entry(nct))]
        body = b'{"studies":[' + b",".join(parts) + b"]"
        if emu._boolean(params, "countTotal") and not token:
            body += b',"totalCount":%d' % len(ids)
        if offset + size < len(ids):
            body += b',"nextPageToken":"' + emu._encode_token(offset + size, digest).encode() + b'"'
        return Response(200, body + b"}", "application/json")

    def _matching(self, params: dict[str, str]) -> list[str]:
        advanced = params.get("filter.advanced", "").strip()
        since = CHANGED_SINCE.fullmatch(advanced) if advanced else None
        if since is not None and not _searches(params) and not params.get("filter.ids"):
            return self.store.posted_since(since.group(1))
        if advanced or _searches(params):
            if params.get("filter.ids"):
                raise ApiError(400, "the bench emulator does not combine filter.ids and searches")
            return self._searched(params)
        raw = params.get("filter.ids")
        if not raw:
            return self.store.ids()
        wanted = emu._id_list(raw, "filter.ids")
        return sorted(nct for nct in wanted if self.store.entry(nct) is not None)

    def _searched(self, params: dict[str, str]) -> list[str]:
        """Matches of the ``query.*`` and ``filter.advanced`` clauses, as the tests' emulator
        finds them (``filter.advanced`` searches every field the index keeps)."""
        clauses: list[tuple[Any, tuple[str, ...]]] = []
        try:
            for name in SEARCH_PARAMS:
                if params.get(name, "").strip():
                    clauses.append((emu.parse_query(params[name]), emu.SEARCH_AREAS[name]))
            if params.get("filter.advanced", "").strip():
                clauses.append((emu.parse_query(params["filter.advanced"]), ("@all",)))
        except emu.QueryError as exc:
            raise ApiError(400, str(exc)) from exc
        key = json.dumps(
            sorted(
                (k, v) for k, v in params.items() if k in SEARCH_PARAMS or k == "filter.advanced"
            )
        )
        return self.store.search(clauses, key)

    def _piece(self, nct: str, entry: Entry, names: list[str] | None) -> bytes:
        """The study, or the pieces ``fields`` names; a probe is built from the index."""
        if not names or "@query" in names:
            return self.store.body(entry)
        if {name.strip().lower() for name in names} <= PROBE_PIECES:
            study: dict[str, Any] = {
                "protocolSection": {
                    "identificationModule": {"nctId": nct},
                    "statusModule": {"lastUpdatePostDateStruct": {"date": entry.posted}},
                }
            }
        else:
            study = json.loads(self.store.body(entry))
        return json.dumps(emu.project(study, names), separators=(",", ":")).encode()


def _searches(params: dict[str, str]) -> bool:
    return any(params.get(name, "").strip() for name in SEARCH_PARAMS)


class LeanEmulator(emu.Emulator):  # type: ignore[misc,name-defined]
    """The emulator's server and control API over a ``LeanStore``."""

    def __init__(self, data_dir: Path, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self.lean = LeanStore(data_dir)
        self.api = LeanApi(self.lean)

    @classmethod
    def start_lean(
        cls, data_dir: Path, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0
    ) -> LeanEmulator:
        """Index ``data_dir`` and serve it from a thread on ``host:port`` (0: a free port)."""
        emulator = cls(data_dir, latency=latency)
        emulator._serve(host, port)
        return emulator

    def publish(self, study: Mapping[str, Any], date: str | None = None) -> int:
        return self.lean.publish(study, date)[1]

    def reset_stats(self) -> None:
        super().reset_stats()
        self.api.reset_kinds()

    def current(self, nct: str) -> dict[str, Any] | None:
        entry = self.lean.entry(emu._require_nct(nct))
        return None if entry is None else json.loads(self.lean.body(entry))

    def control(self, method: str, path: str, raw_body: bytes | None) -> Any:
        """The emulator's control API, plus ``POST /_emu/latency {"seconds": s}``: the delay
        of every API answer from now on (the benchmark's network round trip)."""
        if method == "GET" and path.strip("/") == "_emu/kinds":
            return Response.json(dict(self.api.kinds))
        if method == "POST" and path.strip("/") == "_emu/latency":
            try:
                self.latency = max(0.0, float(emu._json_object(raw_body)["seconds"]))
            except (ValueError, KeyError, TypeError) as exc:
                return Response.json({"error": f"{type(exc).__name__}: {exc}"}, status=400)
            return Response.json({"ok": True, "seconds": self.latency})
        return super().control(method, path, raw_body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a bench dataset as API v2.")
    parser.add_argument("--data", type=Path, required=True, help="a bench/generate.py dataset")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API answer")
    args = parser.parse_args(argv)
    emulator = LeanEmulator.start_lean(
        args.data, host=args.host, port=args.port, latency=args.latency_ms / 1000
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.port_file:
        emu._write_port_file(args.port_file, emulator.port)
    print(emulator.port, flush=True)
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
