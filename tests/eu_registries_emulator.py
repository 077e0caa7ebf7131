#!/usr/bin/env python3
# ruff: noqa: E501  (copied from the acceptance checks: kept close to that file)
"""An emulator of three more registries for the tests (stdlib only): the EU Clinical
Trials Register (EUCTR), the EU Clinical Trials Information System (CTIS) and ISRCTN, on the
paths their public services answer (see ../design/registries.md), from the real records in
../reference/{euctr,ctis,isrctn}/.

EUCTR  (base http://HOST:PORT/euctr, as https://www.clinicaltrialsregister.eu)
  GET  /euctr/ctr-search/rest/download/full?query=<EudraCT>&mode=current_page
       every country record of the trial, as the register's text download; an unknown
       number: the download's header alone (the register answers 200 either way)
  GET  /euctr/ctr-search/rest/download/trial/<EudraCT>/<CC>        one country record
  GET  /euctr/ctr-search/rest/download/summary?query=<words>&mode=current_page[&page=N]
       summary blocks (20 trials a page), "Trial protocol: ES(Ongoing) SE(Completed)" lines
  GET  /euctr/ctr-search/rest/feed/bydates?query=<words>   RSS: trials updated in 7 days
CTIS   (api http://HOST:PORT/ctis-public-api, as https://euclinicaltrials.eu/ctis-public-api)
  GET  /ctis-public-api/retrieve/<ctNumber>      the record (404 for an unknown number)
  POST /ctis-public-api/search  {"pagination":{"page","size"},"searchCriteria":{"number"|
       "containAll"|"medicalCondition"|"sponsor"},"sort":{"property","direction"}}
       -> {"pagination":{"totalRecords","currentPage","totalPages","nextPage","prevPage",
       "size"},"data":[{"ctNumber","ctStatus" (the public status code),"ctTitle",
       "lastUpdated" (dd/mm/yyyy),"sponsor","conditions","trialPhase"}]}; GET /search: 403
ISRCTN (api http://HOST:PORT/isrctn/api, as https://www.isrctn.com/api)
  GET  /isrctn/api/query/format/default?q=<query>&limit=<n>
       q: 8 digits or ISRCTN + 8 digits (that record), "lastEdited GE <ISO time>", or words;
       limit=0: the count alone; default limit 10
Control (as the ClinicalTrials.gov emulator's):
  POST /_emu/publish {"registry": "euctr"|"ctis"|"isrctn", "body": text|object, "date": day}
       euctr: one country record's text (replaces the record of that number and country);
       ctis: a retrieve record; isrctn: a <fullTrial> element's XML
  POST /_emu/results {"id": EudraCT}: the trial's summary says "Trial results: View results"
       (else "(No results available)", as the register's does)
  POST /_emu/gone {"registry", "id"}; POST /_emu/fault {"path_prefix","kind","count"}
       (kind 403, 429, 500, html, truncated (half the body, then the connection closed),
       or slow); POST /_emu/clear_faults; POST /_emu/reset_stats
  GET  /_emu/stats  {"requests": n, "by_registry": {...}, "paths": [...]}

    python3 eu_registries_emulator.py --port 0 [--port-file F] [--reference DIR]

In tests: ``EuEmulator.start(reference_dir)`` runs it in a thread of the test process (its
``url(registry)``, ``publish``, ``gone``, ``fault``, ``stats``). Copied from the acceptance
checks' emulator (shared/checks/eu_registries_emulator.py) so the suite runs without them;
the reference records it serves are the real ones in tests/data/reference/.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
import unicodedata
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

EUDRACT = re.compile(r"^\d{4}-\d{6}-\d{2}$")
CTIS_NO = re.compile(r"^\d{4}-\d{6}-\d{2}-\d{2}$")
LOCK = threading.Lock()
HEADER = (
    "This file contains full details on each clinical trial selected for download. Where "
    "multi-state trials have been downloaded full information for each of the member "
    "states/countries involved in the trial are included separately.\n\n"
)
CTIS_STATUS = {"Authorised": 3, "Ongoing": 4, "Ended": 8}


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return re.findall(r"[a-z0-9]+", text)


def matches(query: str, hay: str) -> bool:
    have = set(words(hay))
    return all(w in have for w in words(query))


def euctr_field(block: str, label: str) -> str:
    m = re.search(r"^" + re.escape(label) + r":[ \t]*(.*)$", block, re.M)
    return m.group(1).strip() if m else ""


def euctr_key(block: str) -> tuple[str, str]:
    number = euctr_field(block, "EudraCT Number")
    link = euctr_field(block, "Link")
    m = re.search(r"/trial/[^/]+/([A-Za-z0-9]+)/?", link)
    return number, (m.group(1).upper() if m else "")


def xml_of(tag: str, value) -> ET.Element:
    el = ET.Element(tag)
    if isinstance(value, dict):
        for k, v in value.items():
            for item in v if isinstance(v, list) else [v]:
                el.append(xml_of(k, item))
    elif value is not None:
        el.text = str(value)
    return el


class State:
    def __init__(self) -> None:
        self.euctr: dict[tuple[str, str], str] = {}  # (EudraCT, country) -> record text
        self.euctr_day: dict[str, str] = {}  # EudraCT -> day last updated
        # EudraCT -> the summary's "Trial results" (the register's results tab, posted)
        self.euctr_results: dict[str, str] = {}
        self.ctis: dict[str, dict] = {}
        self.isrctn: dict[str, str] = {}  # 8 digits -> <fullTrial> XML
        self.isrctn_updated: dict[str, str] = {}  # 8 digits -> lastUpdated (ISO)
        self.requests = 0
        self.by_registry: dict[str, int] = {}
        self.paths: list[str] = []
        self.faults: list[dict] = []

    def add_euctr(self, text: str, day: str | None) -> list[str]:
        numbers = []
        for block in re.split(r"\n(?=Summary\nEudraCT Number:)", "\n" + text):
            block = block.strip("\n")
            if not block.startswith("Summary"):
                continue
            number, country = euctr_key(block)
            if not EUDRACT.match(number):
                continue
            self.euctr[(number, country)] = block + "\n"
            self.euctr_day[number] = day or "2025-01-01"
            numbers.append(number)
        return numbers

    def add_ctis(self, record: dict, day: str | None) -> str:
        record = {k: v for k, v in record.items() if k not in ("ctrname", "record_last_import")}
        if isinstance(record.get("ctStatus"), int):  # a search row's code merged in: /retrieve
            record["ctStatus"] = "Authorised"  # gives the application's status there
        if day:
            d = date.fromisoformat(day)
            record["lastUpdated"] = d.strftime("%d/%m/%Y")
        number = record["ctNumber"]
        self.ctis[number] = record
        return number

    def add_isrctn(self, xml: str, day: str | None) -> str:
        full = ET.fromstring(xml)
        trial = full.find("trial") if full.tag == "fullTrial" else full
        if full.tag != "fullTrial":
            wrapper = ET.Element("fullTrial")
            wrapper.append(full)
            full = wrapper
        number = (trial.findtext("isrctn") or "").strip()
        if day:  # published now: the time of day is now's, as the registry stamps an edit
            now = datetime.now(UTC).strftime("%H:%M:%S.%f")[:12]
            trial.set("lastUpdated", f"{day}T{now}Z")
            trial.set("version", str(int(trial.get("version") or "1") + 1))
        trial.set("lastUpdated", trial.get("lastUpdated") or "2024-01-01T09:00:00.000Z")
        trial.set("version", trial.get("version") or "1")
        self.isrctn[number] = ET.tostring(full, encoding="unicode")
        self.isrctn_updated[number] = trial.get("lastUpdated")
        return number

    def take_fault(self, path: str) -> dict | None:
        for f in self.faults:
            if path.startswith(f.get("path_prefix", "/")) and f.get("count", 0) > 0:
                f["count"] -= 1
                return f
        return None


S = State()


def load_reference(ref: Path) -> None:
    for f in sorted((ref / "euctr").glob("*.txt")):
        S.add_euctr(f.read_text(encoding="utf-8"), None)
    for f in sorted((ref / "ctis").glob("CTIS_*.json")):
        S.add_ctis(json.loads(f.read_text(encoding="utf-8")), None)
    for f in sorted((ref / "isrctn").glob("*.xml")):
        S.add_isrctn(f.read_text(encoding="utf-8"), None)
    for f in sorted((ref / "isrctn").glob("ISRCTN_*.json")):
        d = json.loads(f.read_text(encoding="utf-8"))
        d = {k: v for k, v in d.items() if k not in ("ctrname", "record_last_import")}
        d["isrctn"] = str(d.get("isrctn", "")).zfill(8)
        S.add_isrctn(ET.tostring(xml_of("trial", d), encoding="unicode"), None)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    truncated = False

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, Nagle holds the body back for
        # the client's delayed ACK (~40 ms an answer), which no real registry adds
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send_body(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            if self.truncated:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    def text(self, code: int, text: str, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_body(code, text.encode("utf-8"), ctype)

    def json_out(self, code: int, obj) -> None:
        self.send_body(code, json.dumps(obj).encode(), "application/json")

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def count(self, registry: str) -> bool:
        """Count the request; answer an injected fault instead (True when answered)."""
        with LOCK:
            S.requests += 1
            S.by_registry[registry] = S.by_registry.get(registry, 0) + 1
            S.paths.append(self.path[:300])
            fault = S.take_fault(urlparse(self.path).path)
        if not fault:
            return False
        kind = str(fault.get("kind"))
        if kind == "slow":
            time.sleep(float(fault.get("seconds", 5)))
            return False
        if kind == "html":
            self.text(200, "<html><body>Service unavailable</body></html>", "text/html")
        elif kind == "truncated":
            self.truncated = True  # the answer below is cut in half
            return False
        else:
            self.text(int(kind), f"fault {kind}")
        return True

    # ---- control ----
    def do_POST(self):
        url = urlparse(self.path)
        raw = self.body()
        if url.path.startswith("/_emu/"):
            try:
                req = json.loads(raw or b"{}")
            except ValueError:
                return self.text(400, "bad json")
            with LOCK:
                if url.path == "/_emu/publish":
                    reg, body, day = req.get("registry"), req.get("body"), req.get("date")
                    day = day or date.today().isoformat()
                    if reg == "euctr":
                        out = S.add_euctr(body, day)
                    elif reg == "ctis":
                        out = S.add_ctis(body, day)
                    elif reg == "isrctn":
                        out = S.add_isrctn(body, day)
                    else:
                        return self.text(400, "registry?")
                    return self.json_out(200, {"published": out})
                if url.path == "/_emu/results":  # an EUCTR trial's results posted
                    S.euctr_results[str(req.get("id", ""))] = "View results"
                    return self.json_out(200, {"results": str(req.get("id", ""))})
                if url.path == "/_emu/gone":
                    reg, rid = req.get("registry"), str(req.get("id", ""))
                    if reg == "euctr":
                        for key in [k for k in S.euctr if k[0] == rid]:
                            del S.euctr[key]
                    elif reg == "ctis":
                        S.ctis.pop(rid, None)
                    elif reg == "isrctn":
                        S.isrctn.pop(rid.upper().removeprefix("ISRCTN"), None)
                    return self.json_out(200, {"gone": rid})
                if url.path == "/_emu/fault":
                    S.faults.append(req)
                    return self.json_out(200, {"faults": len(S.faults)})
                if url.path == "/_emu/clear_faults":
                    S.faults.clear()
                    return self.json_out(200, {})
                if url.path == "/_emu/reset_stats":
                    S.requests, S.by_registry, S.paths = 0, {}, []
                    return self.json_out(200, {})
            return self.text(404, "no such control")
        if url.path == "/ctis-public-api/search":
            if self.count("ctis"):
                return
            try:
                req = json.loads(raw or b"{}")
            except ValueError:
                return self.json_out(400, {"error": "body is not JSON"})
            return self.ctis_search(req)
        self.text(404, "not found")

    def do_GET(self):
        url = urlparse(self.path)
        qs = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/_emu/stats":
            with LOCK:
                return self.json_out(
                    200,
                    {"requests": S.requests, "by_registry": S.by_registry, "paths": S.paths[-200:]},
                )
        if url.path.startswith("/euctr/"):
            if self.count("euctr"):
                return
            return self.euctr(url.path.removeprefix("/euctr"), qs)
        if url.path.startswith("/ctis-public-api/"):
            if self.count("ctis"):
                return
            rest = url.path.removeprefix("/ctis-public-api/")
            if rest == "search":
                return self.text(403, "<html><body>403 Forbidden</body></html>", "text/html")
            m = re.fullmatch(r"retrieve/([0-9-]+)", rest)
            if m and m.group(1) in S.ctis:
                return self.json_out(200, S.ctis[m.group(1)])
            return self.json_out(404, {"status": 404, "message": "Clinical trial not found"})
        if url.path == "/isrctn/api/query/format/default":
            if self.count("isrctn"):
                return
            return self.isrctn_query(qs)
        self.text(404, "not found")

    do_HEAD = do_GET

    # ---- EUCTR ----
    def euctr(self, path: str, qs: dict) -> None:
        with LOCK:
            records = dict(S.euctr)
            days = dict(S.euctr_day)
        if path == "/ctr-search/rest/download/full":
            q = qs.get("query", "").strip()
            q = q.removeprefix("eudract_number:")
            if EUDRACT.match(q):
                blocks = [t for (n, _), t in sorted(records.items()) if n == q]
            else:
                numbers = sorted({n for (n, _), t in records.items() if q and matches(q, t)})[:20]
                blocks = [t for (n, _), t in sorted(records.items()) if n in numbers]
            return self.text(200, HEADER + "\n".join(blocks))
        m = re.fullmatch(
            r"/ctr-search/rest/download/trial/(\d{4}-\d{6}-\d{2})/([A-Za-z0-9]+)", path
        )
        if m:
            block = records.get((m.group(1), m.group(2).upper()))
            return self.text(200, HEADER + (block or ""))
        if path == "/ctr-search/rest/download/summary":
            q = qs.get("query", "").strip().removeprefix("eudract_number:")
            numbers = sorted(
                {
                    n
                    for (n, _), t in records.items()
                    if (n == q if EUDRACT.match(q) else (not q or matches(q, t)))
                }
            )
            page = max(1, int(qs.get("page", "1") or 1))
            out = []
            for n in numbers[(page - 1) * 20 : page * 20]:
                blocks = [t for (k, _), t in sorted(records.items()) if k == n]
                first = blocks[0]
                protocol = " ".join(
                    f"{euctr_key(b)[1]}({euctr_field(b, 'P. End of Trial Status') or euctr_field(b, 'Trial Status')})"
                    for b in blocks
                )
                out.append(
                    "\n".join(
                        [
                            f"EudraCT Number: {n}",
                            "Sponsor Protocol Number: "
                            + euctr_field(first, "Sponsor's Protocol Code Number"),
                            f"Sponsor Name: {euctr_field(first, 'B.1.1 Name of Sponsor')}",
                            f"Full Title: {euctr_field(first, 'A.3 Full title of the trial')}",
                            f"Start Date: {euctr_field(first, 'Date on which this record was first entered in the EudraCT database')}",
                            f"Medical condition: {euctr_field(first, 'E.1.1 Medical condition(s) being investigated')}",
                            f"Trial protocol: {protocol}",
                            "Trial results: " + S.euctr_results.get(n, "(No results available)"),
                            f"Link: https://www.clinicaltrialsregister.eu/ctr-search/search?query=eudract_number:{n}",
                        ]
                    )
                )
            head = f"Trials with a EudraCT protocol ({len(numbers)})\n\n"
            return self.text(200, head + "\n\n".join(out) + ("\n" if out else ""))
        if path == "/ctr-search/rest/feed/bydates":
            q = qs.get("query", "").strip()
            since = (date.today() - timedelta(days=7)).isoformat()
            numbers = sorted(
                {
                    n
                    for (n, _), t in records.items()
                    if days.get(n, "") >= since and (not q or matches(q, t))
                }
            )
            items = "".join(
                f"<item><title>{n}</title><link>https://www.clinicaltrialsregister.eu/ctr-search/search?query=eudract_number:{n}</link>"
                f"<pubDate>{format_datetime(datetime.fromisoformat(days[n]).replace(tzinfo=UTC))}</pubDate></item>"
                for n in numbers
            )
            rss = (
                '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
                f"<title>EU Clinical Trials Register: updated in the last 7 days</title>{items}</channel></rss>"
            )
            return self.text(200, rss, "application/rss+xml; charset=utf-8")
        self.text(404, "<html><body>Not found</body></html>", "text/html")

    # ---- CTIS ----
    def ctis_search(self, req: dict) -> None:
        crit = req.get("searchCriteria") or {}
        pag = req.get("pagination") or {}
        page, size = max(1, int(pag.get("page", 1))), max(1, min(int(pag.get("size", 20)), 100))
        with LOCK:
            records = list(S.ctis.values())
        hits = []
        for r in records:
            if crit.get("number") and r.get("ctNumber") != crit["number"]:
                continue
            worded = [k for k in ("containAll", "medicalCondition", "sponsor") if crit.get(k)]
            if worded:  # (the record as text only when words are asked for: it is large)
                blob = json.dumps(r, ensure_ascii=False)
                if any(not matches(str(crit[k]), blob) for k in worded):
                    continue
            code = r.get("ctPublicStatusCode")
            if crit.get("status") and code not in crit["status"]:
                continue
            hits.append(r)

        def updated(r):
            try:
                return datetime.strptime(r.get("lastUpdated", ""), "%d/%m/%Y")
            except ValueError:
                return datetime.min

        sort = req.get("sort") or {}
        hits.sort(key=updated, reverse=(sort.get("direction", "DESC") == "DESC"))
        total = min(len(hits), 10_000)
        pages = max(1, -(-total // size))
        rows = []
        for r in hits[(page - 1) * size : page * size]:
            part1 = (r.get("authorizedApplication") or {}).get("authorizedPartI") or {}
            sponsors = [
                s.get("organisation", {}).get("name", "") for s in part1.get("sponsors", []) or []
            ]
            status = r.get("ctPublicStatusCode")
            if not isinstance(status, int):
                status = CTIS_STATUS.get(str(r.get("ctStatus")), 0)
            rows.append(
                {
                    "ctNumber": r.get("ctNumber"),
                    "ctStatus": status,
                    "ctTitle": (
                        (part1.get("trialDetails") or {}).get("clinicalTrialIdentifiers") or {}
                    ).get("fullTitle", ""),
                    "shortTitle": r.get("shortTitle", ""),
                    "lastUpdated": r.get("lastUpdated", ""),
                    "lastPublicationUpdate": r.get("lastPublicationUpdate", ""),
                    "sponsor": ", ".join(sponsors),
                    "trialPhase": r.get("trialPhase", ""),
                    "conditions": ", ".join(
                        c.get("medicalCondition", "")
                        for c in part1.get("medicalConditions", []) or []
                    ),
                }
            )
        self.json_out(
            200,
            {
                "showWarning": total >= 10_000,
                "pagination": {
                    "totalRecords": total,
                    "currentPage": page,
                    "totalPages": pages,
                    "size": size,
                    "nextPage": page < pages,
                    "prevPage": page > 1,
                },
                "data": rows,
            },
        )

    # ---- ISRCTN ----
    def isrctn_query(self, qs: dict) -> None:
        q = qs.get("q", "").strip()
        try:
            limit = int(qs.get("limit", "10"))
        except ValueError:
            return self.text(400, "<error>limit</error>", "application/xml")
        with LOCK:
            records = dict(S.isrctn)
            updated = dict(S.isrctn_updated)
        m = re.fullmatch(r"(?:ISRCTN)?(\d{8})", q, re.I)
        since = re.fullmatch(r"lastEdited\s+GE\s+(\S+)", q)
        if m:
            keys = [m.group(1)] if m.group(1) in records else []
        elif since:
            keys = sorted(k for k in records if updated.get(k, "") >= since.group(1))
        else:
            keys = sorted(k for k in records if not q or matches(q, records[k]))
        body = "".join(records[k] for k in keys[: max(0, limit)])
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<allTrials '
            f'totalCount="{len(keys)}">{body}</allTrials>'
        )
        self.text(200, xml, "application/xml; charset=utf-8")


class EuEmulator:
    """The emulator in a thread of this process (one at a time: its state is the module's)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread
        self.base = f"http://127.0.0.1:{server.server_address[1]}"

    @classmethod
    def start(cls, reference: Path) -> EuEmulator:
        global S
        S = State()
        load_reference(reference)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        return cls(server, thread)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, registry: str) -> str:
        """The base URL the registry's settings take."""
        return {
            "euctr": f"{self.base}/euctr",
            "ctis": f"{self.base}/ctis-public-api",
            "isrctn": f"{self.base}/isrctn/api",
        }[registry]

    def environment(self) -> dict[str, str]:
        """The environment that points trialwatch's three EU/UK registries here."""
        return {
            "TRIALWATCH_EUCTR_URL": self.url("euctr"),
            "TRIALWATCH_CTIS_API_URL": self.url("ctis"),
            "TRIALWATCH_ISRCTN_API_URL": self.url("isrctn"),
        }

    def control(self, action: str, body: dict | None = None) -> dict:
        import urllib.request

        request = urllib.request.Request(
            f"{self.base}/_emu/{action}",
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def publish(self, registry: str, body, day: str | None = None) -> dict:
        return self.control("publish", {"registry": registry, "body": body, "date": day})

    def post_results(self, eudract_number: str) -> dict:
        """The EUCTR trial's results posted: its summary says "Trial results: View results"."""
        return self.control("results", {"id": eudract_number})

    def gone(self, registry: str, study_id: str) -> dict:
        return self.control("gone", {"registry": registry, "id": study_id})

    def fault(self, path_prefix: str, kind: str, count: int = 1, **extra) -> dict:
        return self.control(
            "fault", {"path_prefix": path_prefix, "kind": kind, "count": count, **extra}
        )

    def stats(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"{self.base}/_emu/stats", timeout=10) as answer:
            return json.loads(answer.read())

    def reset_stats(self) -> None:
        self.control("reset_stats")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument(
        "--reference", default=str(Path(__file__).resolve().parent.parent / "reference")
    )
    a = ap.parse_args()
    load_reference(Path(a.reference))
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    port = srv.server_address[1]
    if a.port_file:
        Path(a.port_file).write_text(str(port))
    else:
        print(port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
