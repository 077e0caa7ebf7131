#!/usr/bin/env python3
"""Publish a record file as the registry emulator's new current version (stdlib only).

    python scripts/publish.py http://127.0.0.1:8765 RECORD.json [--date YYYY-MM-DD]

Stands in for "the registry updated the record" in the README walk-through and the demo.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path


def publish(base_url: str, record: Path, date: str | None = None) -> int:
    study = json.loads(record.read_text())
    study = study.get("study", study)
    body: dict[str, object] = {"study": study}
    if date:
        body["date"] = date
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/_emu/publish",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["version"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("emulator_url", help="e.g. http://127.0.0.1:8765")
    parser.add_argument("record", type=Path, help="a v2 study JSON file")
    parser.add_argument("--date", help="its last-update-posted date")
    args = parser.parse_args()
    version = publish(args.emulator_url, args.record, args.date)
    print(f"published {args.record} as version {version}", file=sys.stderr)


if __name__ == "__main__":
    main()
