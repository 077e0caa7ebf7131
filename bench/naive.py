"""The naive poller trialwatch is compared with: one request per study, a generic deep diff.

What most registry monitors do (urlwatch, changedetection.io, the Apify actors): for every
watched study, ``GET /api/v2/studies/{id}``, and compare the JSON with the copy kept from the
previous cycle using a generic structural diff (``deepdiff``). One connection, one request at
a time, as a polite client must. To keep the baseline fair rather than a straw man, a study
whose bytes are unchanged skips the deep diff, and the copies live in one SQLite file
committed once per cycle.

Runs in the bench tools environment (``requests`` and ``deepdiff``)::

    python bench/naive.py --api URL --ids FILE --state DB    # one cycle, prints a JSON report
    python bench/naive.py --diff-speed PAIRS.jsonl           # deepdiff pairs/s on raw records
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import requests
from deepdiff import DeepDiff


def cycle(api: str, ids: list[str], state: Path) -> dict[str, Any]:
    """One polling cycle over ``ids``; returns counts and the requests made."""
    db = sqlite3.connect(state)
    db.execute("CREATE TABLE IF NOT EXISTS copies (id TEXT PRIMARY KEY, body BLOB)")
    report = {"checked": 0, "new": 0, "changed": 0, "unchanged": 0, "failed": 0, "requests": 0}
    report["diff_items"] = 0
    with requests.Session() as http:
        for study_id in ids:
            report["requests"] += 1
            response = http.get(f"{api}/studies/{study_id}", timeout=60)
            report["checked"] += 1
            if response.status_code != 200:
                report["failed"] += 1
                continue
            _compare(db, study_id, response.content, report)
    db.commit()
    db.close()
    return report


def _compare(db: sqlite3.Connection, study_id: str, body: bytes, report: dict[str, Any]) -> None:
    row = db.execute("SELECT body FROM copies WHERE id = ?", (study_id,)).fetchone()
    if row is None:
        report["new"] += 1
    elif row[0] == body:
        report["unchanged"] += 1
        return
    else:
        found = DeepDiff(json.loads(row[0]), json.loads(body))
        report["diff_items"] += sum(len(items) for items in found.values())
        report["changed" if found else "unchanged"] += 1
    db.execute("INSERT OR REPLACE INTO copies (id, body) VALUES (?, ?)", (study_id, body))


def diff_speed(pairs_file: Path) -> dict[str, float]:
    """DeepDiff pairs per second (one core) over ``[old, new]`` raw records, one pair a line."""
    pairs = [json.loads(line) for line in pairs_file.open()]
    start = time.perf_counter()
    for old, new in pairs:
        DeepDiff(old, new)
    seconds = time.perf_counter() - start
    return {"pairs": len(pairs), "seconds": seconds, "pairs_per_second": len(pairs) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A naive one-request-per-study poller.")
    parser.add_argument("--api", help="API v2 base URL, e.g. http://127.0.0.1:8000/api/v2")
    parser.add_argument("--ids", type=Path, help="a file of NCT ids, one a line")
    parser.add_argument("--state", type=Path, help="the SQLite file of previous copies")
    parser.add_argument("--diff-speed", type=Path, metavar="PAIRS", help="time deepdiff only")
    args = parser.parse_args(argv)
    if args.diff_speed:
        print(json.dumps(diff_speed(args.diff_speed)))
        return 0
    if not (args.api and args.ids and args.state):
        parser.error("--api, --ids and --state are required for a cycle")
    ids = [line.strip() for line in args.ids.open() if line.strip()]
    print(json.dumps(cycle(args.api, ids, args.state)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
