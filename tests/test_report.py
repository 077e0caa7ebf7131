"""``trialwatch report``: the HTML renderer, the command, and the page as Chromium draws it.

The renderer is tested on hand-made histories (escaping, charts, estimated versus actual, one
and sixty versions, partial dates); the command end to end over the registry emulator on
SQLite and PostgreSQL; and the page in headless Chromium, which must draw every chart at a
real size, log nothing to its console and produce a screenshot that is not blank.
"""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TESTS_DATA
from ctgov_emulator import Emulator

from service import cli_report
from service.cli import cli
from service.cli_report import write_atomically
from service.findings.stored import FindingInfo
from service.models import Outcome, Snapshot, StoredChange, StudyDate
from service.report import (
    SeedFacts,
    StudyData,
    VersionPoint,
    partial_date,
    render_report,
)
from service.report.charts import dates_chart, status_band
from service.seeds.service import load_seeds
from service.store import Store
from service.svg import Circle, Line, Rect, Text

NOW = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
XSS = "<script>alert(1)</script>"
DEMO = TESTS_DATA / "demo" / "NCT05605665"
SEED_FILE = Path(__file__).resolve().parents[1] / "seeds" / "il2-rapamycin-ss-nct05605665.toml"

# ---- hand-made histories --------------------------------------------------------------------


def point(
    version: int,
    posted: str,
    status: str = "RECRUITING",
    count: int | None = 100,
    kind: str = "ESTIMATED",
    start: tuple[str, str] = ("2021-05", "ESTIMATED"),
    primary: tuple[str, str] = ("2023", "ESTIMATED"),
    completion: tuple[str, str] = ("2023-12", "ESTIMATED"),
) -> VersionPoint:
    return VersionPoint(
        version=version,
        date=posted,
        registry_version=version,
        status=status,
        enrollment_count=count,
        enrollment_type=kind,
        start=StudyDate(date=start[0], type=start[1]),
        primary_completion=StudyDate(date=primary[0], type=primary[1]),
        completion=StudyDate(date=completion[0], type=completion[1]),
    )


def change(
    change_id: int, kind: str, summary: str, to: int, severity: str = "medium", **extra: Any
) -> StoredChange:
    return StoredChange(
        id=change_id,
        study_id="NCT01234567",
        kind=kind,  # type: ignore[arg-type]
        field="protocolSection.x",
        summary=summary,
        severity=severity,  # type: ignore[arg-type]
        detected_at=NOW,
        from_version=None if to == 0 else to - 1,
        to_version=to,
        **extra,
    )


def study(**overrides: Any) -> StudyData:
    """A record with a hidden change (suspended and back on one day) and outcome changes."""
    versions = (
        point(0, "2021-03-02", "NOT_YET_RECRUITING", 120),
        point(1, "2021-06-10", count=120, start=("2021-06-01", "ACTUAL")),
        point(2, "2022-02-14", count=180, primary=("2024-06", "ESTIMATED")),
        point(3, "2022-09-01", "SUSPENDED", 180, primary=("2024-06", "ESTIMATED")),
        point(4, "2022-09-01", count=180, primary=("2024-06", "ESTIMATED")),
        point(
            5,
            "2025-04-10",
            "COMPLETED",
            164,
            "ACTUAL",
            start=("2021-06-01", "ACTUAL"),
            primary=("2025-03-31", "ACTUAL"),
            completion=("2025-03-31", "ACTUAL"),
        ),
    )
    changes = (
        change(1, "record_added", "Record added", 0, "low"),
        change(2, "enrollment_changed", "Enrollment: 120 → 180", 2, "high"),
        change(
            3,
            "outcome_modified",
            "Primary outcome 1 reworded",
            2,
            "high",
            outcome_type="primary",
            old={"measure": "ESSDAI at week 12", "time_frame": "12 weeks", "description": ""},
            new={"measure": "ESSDAI at week 24", "time_frame": "24 weeks", "description": ""},
        ),
        change(
            4,
            "outcome_reclassified",
            "Outcome moved",
            2,
            "high",
            outcome_type="primary",
            old="secondary",
            new="primary",
        ),
        change(5, "status_changed", "Overall status: Recruiting → Suspended", 3, "high"),
        change(6, "status_changed", "Overall status: Suspended → Recruiting", 4),
    )
    latest = Snapshot(
        study_id="NCT01234567",
        brief_title="Baricitinib in Sjögren's syndrome",
        phases=("PHASE2",),
        primary_outcomes=(Outcome(measure="ESSDAI at week 24"),),
    )
    data: dict[str, Any] = {
        "registry": "ctgov",
        "study_id": "NCT01234567",
        "versions": versions,
        "changes": changes,
        "latest": latest,
    }
    return StudyData(**(data | overrides))


def many_versions(count: int) -> StudyData:
    versions = tuple(
        point(
            i,
            (date(2015, 1, 1) + timedelta(days=40 * i)).isoformat(),
            "RECRUITING" if i < count // 2 else "ACTIVE_NOT_RECRUITING",
            100 + 3 * i,
            "ESTIMATED" if i < count - 5 else "ACTUAL",
            primary=((date(2017, 1, 1) + timedelta(days=30 * i)).isoformat()[:7], "ESTIMATED"),
        )
        for i in range(count)
    )
    changes = tuple(
        change(i, "enrollment_changed", f"Enrollment: {97 + 3 * i} → {100 + 3 * i}", i)
        for i in range(1, count)
    )
    return StudyData("ctgov", "NCT07654321", versions, changes, Snapshot(study_id="NCT07654321"))


def svgs(page: str) -> list[str]:
    """The charts as drawn for a wide column (each is drawn for a phone's width too)."""
    return re.findall(r'<svg class="chart size-wide".*?</svg>', page, flags=re.S)


def narrow_svgs(page: str) -> list[str]:
    return re.findall(r'<svg class="chart size-narrow".*?</svg>', page, flags=re.S)


def chart(page: str, label: str) -> str:
    found = [s for s in svgs(page) if f'aria-label="{label}"' in s]
    assert len(found) == 1, f"expected one {label!r} chart"
    return found[0]


# ---- the renderer ---------------------------------------------------------------------------


def test_registry_and_seed_text_is_escaped_everywhere() -> None:
    hostile = study(
        latest=Snapshot(
            study_id="NCT01234567",
            brief_title=XSS,
            official_title='An "official" <i>title</i> & more',
            lead_sponsor="<img src=x onerror=alert(2)>",
            primary_outcomes=(Outcome(measure="<b>bold</b> outcome"),),
        ),
        versions=(point(0, "2024-01-01", status='"><script>alert(3)</script>'),),
        changes=(change(1, "field_changed", "Title: <svg onload=alert(4)>", 0),),
        seeds=(
            SeedFacts(
                seed_id="s1",
                title=XSS,
                primary_outcomes=("<iframe>",),
                discrepancies=(("high", "<script>x</script>"),),
            ),
        ),
    )
    page = render_report([hostile], generated_at=NOW, title="<title>")
    assert "<script" not in page
    for tag in ("<img", "<iframe", "<i>title", "<b>bold", "<svg onload", "<title><title>"):
        assert tag not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-status="&quot;&gt;&lt;script&gt;alert(3)&lt;/script&gt;"' in page
    assert "&quot;official&quot; &lt;i&gt;title&lt;/i&gt; &amp; more" in page


def test_findings_and_chart_tooltips_escape_registry_text() -> None:
    finding = FindingInfo(
        registry="ctgov",
        study_id="NCT01234567",
        rule="results_overdue",
        state="open",
        opened_at=NOW - timedelta(days=30),
        severity="high",
        summary=f"Results overdue {XSS}",
        source='FDAAA "801" <a href=x>',
    )
    hostile = study(
        findings=(finding,),
        versions=(point(0, "2024-01-01", count=5, kind=XSS), point(1, "2024-02-01", count=7)),
    )
    page = render_report([hostile], generated_at=NOW)
    assert "<script" not in page and "<a href=x" not in page
    assert f"Results overdue {html.escape(XSS)}" in page
    assert "FDAAA &quot;801&quot; &lt;a href=x&gt;" in page
    enrollment = chart(page, "Enrollment by version")
    assert f'data-type="{html.escape(XSS)}"' in enrollment  # a hostile type stays an attribute


def test_the_report_is_rendered_from_the_packaged_templates() -> None:
    page = render_report([study()], generated_at=NOW)
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    assert page.endswith("</footer>\n</main></body></html>")
    assert ":root { --ink: #1f2933;" in page  # the stylesheet, inlined from report.css
    assert page.count("<svg") == 6 and page.count("</svg>") == 6  # wide and narrow


def test_the_page_loads_nothing_and_runs_nothing() -> None:
    page = render_report([study(), many_versions(3)], generated_at=NOW)
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in page
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|\bsrc=", page)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs
    assert all(h.startswith(("#", "https://clinicaltrials.gov/study/")) for h in hrefs)


def test_every_study_gets_three_inline_svg_charts_and_its_tables() -> None:
    page = render_report([study()], generated_at=NOW)
    assert len(svgs(page)) == 3
    band = chart(page, "Overall status over time")
    assert re.findall(r'data-status="([A-Z_]+)"', band) == [
        "NOT_YET_RECRUITING",
        "RECRUITING",
        "RECRUITING",
        "COMPLETED",
        "SUSPENDED",  # lasted no time at all: drawn last, as a marker, so nothing hides it
    ]
    for heading in ("Outcome measure changes", "All changes", "Start and completion dates"):
        assert heading in page
    assert "ESSDAI at week 12" in page and "ESSDAI at week 24" in page
    assert 'href="https://clinicaltrials.gov/study/NCT01234567"' in page
    assert "https://clinicaltrials.gov/study/NCT01234567?tab=history&amp;a=1&amp;b=2" in page


def test_estimated_points_are_hollow_and_actual_points_filled() -> None:
    page = render_report([study()], generated_at=NOW)
    for label in ("Enrollment by version", "Start and completion dates by version"):
        points = re.findall(
            r'<circle [^>]*fill="(#[0-9a-f]+)"[^>]*data-type="(\w+)"', chart(page, label)
        )
        assert {kind for _, kind in points} == {"ESTIMATED", "ACTUAL"}
        for fill, kind in points:
            assert (fill == "#fff") == (kind == "ESTIMATED"), (label, fill, kind)
    enrollment = chart(page, "Enrollment by version")
    assert 'stroke-dasharray="5 4"' in enrollment  # the runs while the count is planned
    assert "Estimated (planned) count" in page and "Actual count" in page


def test_date_slips_are_measured_from_partial_dates() -> None:
    page = render_report([study()], generated_at=NOW)
    # primary completion: "2023" (estimated) → "2024-06" → "2025-03-31" (actual)
    assert "+17 months" in page  # 2023-01-01 → 2024-06-01
    assert "+2.2 years" in page  # first to last
    assert partial_date("2023") == date(2023, 1, 1)
    assert partial_date("2023-11") == date(2023, 11, 1)
    assert partial_date("2023-11-05") == date(2023, 11, 5)
    assert partial_date("2023-02-30") is None
    assert partial_date("soon") is None


def test_a_study_with_one_version_and_no_enrollment() -> None:
    only = study(
        versions=(
            point(0, "2024-01-10", count=None, kind="", primary=("", ""), start=("2024", "")),
        ),
        changes=(),
        latest=None,
    )
    page = render_report([only], generated_at=NOW)
    assert "No version gives an enrollment count." in page
    assert len(svgs(page)) == 2  # status band and dates; no empty enrollment chart
    dates = chart(page, "Start and completion dates by version")
    assert dates.count("<circle") == 2  # start "2024" and completion "2023-12"
    assert "No changes stored." in page
    assert "No outcome measure changed" in page


def test_a_watched_record_not_synced_yet_is_listed_without_charts() -> None:
    page = render_report([StudyData("ctgov", "NCT00000002")], generated_at=NOW)
    assert "not synced yet" in page and "No stored versions yet" in page
    assert not svgs(page)
    assert "nothing is watched" in render_report([], generated_at=NOW)


def test_sixty_versions_keep_the_charts_bounded() -> None:
    page = render_report([many_versions(60)], generated_at=NOW)
    assert len(page) < 280_000  # every chart twice: for a wide column and for a phone
    for svg in svgs(page):
        assert 'viewBox="0 0 960 ' in svg
    for svg in narrow_svgs(page):
        assert 'viewBox="0 0 360 ' in svg
    for label in ("Enrollment by version", "Start and completion dates by version"):
        svg = chart(page, label)
        version_labels = re.findall(r'class="label">v(\d+)<', svg)
        assert len(version_labels) <= 12
        assert version_labels[0] == "0" and version_labels[-1] == "59"
        radii = [float(r) for r in re.findall(r'<circle [^>]*r="([\d.]+)"', svg)]
        assert len(radii) >= 60 and all(1.5 <= r <= 5 for r in radii)
    enrollment_values = re.findall(r'class="label">([\d,]+)<', chart(page, "Enrollment by version"))
    assert len(enrollment_values) <= 20  # only as many figures as fit


def test_the_seed_publication_stands_beside_the_registry() -> None:
    seed = SeedFacts(
        seed_id="il2-rapamycin",
        title="Low-dose IL-2 and rapamycin in Sjögren's",
        citation="Li Z, Ann Rheum Dis 2024",
        link="registration named in the document",
        enrollment_count=30,
        enrollment_type="ESTIMATED",
        primary_outcomes=("Proportion of Treg cells",),
        phases=("PHASE1",),
        discrepancies=(("high", "Enrollment: the publication reports 30, the registry 164"),),
    )
    page = render_report([study(seeds=(seed,))], generated_at=NOW)
    section = page[page.index("Publication versus registry") :]
    assert "Publication reports" in section and "Registry, latest version (v5)" in section
    assert "Proportion of Treg cells" in section and "ESSDAI at week 24" in section
    assert "Phase 1" in section and "Phase 2" in section
    assert "the publication reports 30, the registry 164" in section
    assert "Publication versus registry" not in render_report([study()], generated_at=NOW)


def test_rendering_is_pure() -> None:
    one = render_report([study(), many_versions(5)], generated_at=NOW)
    assert one == render_report([study(), many_versions(5)], generated_at=NOW)


def test_a_failed_write_leaves_neither_a_half_file_nor_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_report.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_atomically(target, "<html></html>")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_atomically(target, "<html>ok</html>")
    assert target.read_text() == "<html>ok</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# ---- the command, over the emulator ---------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    return data.get("study", data)


def edited(study: dict[str, Any], edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    copied = copy.deepcopy(study)
    edit(copied["protocolSection"])
    return copied


@pytest.fixture
def trialwatch(
    emulator_factory: Callable[..., Emulator], database_url: str, tmp_path: Path
) -> Iterator[tuple[Callable[..., Any], Emulator]]:
    registry = emulator_factory()
    registry.publish(load(DEMO / "v0.json"), date="2022-11-08")
    config = tmp_path / "trialwatch.toml"
    config.write_text(
        "[ctgov]\nrequests_per_second = 100.0\ntimeout_seconds = 5\nhistory_gap_seconds = 0\n"
    )
    env = {
        "TRIALWATCH_CONFIG": str(config),
        "TRIALWATCH_DATABASE_URL": database_url,
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
    }

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    yield run, registry


def test_report_of_a_record_edited_over_several_versions(
    trialwatch: tuple[Callable[..., Any], Emulator], database_url: str, tmp_path: Path
) -> None:
    run, registry = trialwatch
    assert run("watch", "add", "NCT05605665").exit_code == 0
    assert run("sync").exit_code == 0
    v0 = load(DEMO / "v0.json")

    def bigger(ps: dict[str, Any]) -> None:
        ps["designModule"]["enrollmentInfo"] = {"count": 45, "type": "ESTIMATED"}

    def later(ps: dict[str, Any]) -> None:
        bigger(ps)
        ps["statusModule"]["primaryCompletionDateStruct"] = {"date": "2024-06", "type": "ESTIMATED"}
        ps["outcomesModule"]["primaryOutcomes"][0]["timeFrame"] = "week 24"

    # three versions between two syncs: gap filling stores each of them
    registry.publish(edited(v0, bigger), date="2023-03-01")
    registry.publish(edited(v0, later), date="2023-09-15")
    registry.publish(load(DEMO / "v1.json"), date="2024-01-10")
    assert run("sync").exit_code == 0
    seeds = tmp_path / "seeds"  # a seed whose document names this record
    seeds.mkdir()
    shutil.copy(SEED_FILE, seeds)
    store = Store.open(database_url)
    try:
        load_seeds(store, seeds, NOW)
    finally:
        store.close()

    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    result = run("report", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    changes = len(json.loads(run("changes", "--json").stdout))
    assert result.stdout == (
        f"{out}: report of 1 record(s), 4 version(s), {changes} change(s) written\n"
    )
    page = out.read_text()
    assert len(svgs(page)) == 3
    assert page.count('data-type="ESTIMATED"') and page.count('data-type="ACTUAL"')
    assert "Low-dose Interleukin-2 and Rapamycin" in page
    labels = re.findall(r'class="label">(v\d+)<', chart(page, "Enrollment by version"))
    assert labels == ["v0", "v1", "v2", "v3"]  # the registry's own version numbers
    assert "/study/NCT05605665?tab=history&amp;a=0&amp;b=1" in page  # its compare view
    assert "Outcome measure changes" in page and "week 24" in page
    assert "Publication versus registry" in page and "Target Recruitment 30" in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]

    again = run("report", "nct05605665", "--out", str(out))
    assert again.exit_code == 0, again.stderr
    assert "report of 1 record(s), 4 version(s)" in again.stdout


def test_report_refuses_ids_it_has_no_versions_of(
    trialwatch: tuple[Callable[..., Any], Emulator], tmp_path: Path
) -> None:
    run, _ = trialwatch
    out = tmp_path / "report.html"
    assert run("watch", "add", "NCT05605665").exit_code == 0
    for args, named in (
        (["NCT99999999"], "NCT99999999"),
        (["NCT05605665"], "NCT05605665"),  # watched, but never synced
        (["NCT123"], "NCT123"),
    ):
        result = run("report", *args, "--out", str(out))
        assert result.exit_code == 2, result.stdout
        assert named in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("trialwatch: error: ")
    missing_folder = run("report", "--out", str(tmp_path / "nowhere" / "r.html"))
    assert missing_folder.exit_code == 2 and "does not exist" in missing_folder.stderr
    assert run("report").exit_code == 2  # --out is required
    assert list(tmp_path.glob("*.html")) == []

    empty = run("report", "--out", str(out))  # every watched record, none synced yet
    assert empty.exit_code == 0, empty.stderr
    assert "not synced yet" in out.read_text()


# ---- the page in headless Chromium ------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
# Reads what Chromium laid out; only the test's copy of the page carries it.
PROBE = """<script>
const shown = [...document.querySelectorAll("svg.chart")]
  .filter((svg) => svg.getBoundingClientRect().width > 0);
const charts = shown.map((svg) => {
  const box = svg.getBoundingClientRect();
  return [svg.getAttribute("aria-label"), Math.round(box.width), Math.round(box.height)];
});
const scale = (svg) => svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
const labels = shown.flatMap((svg) => [...svg.querySelectorAll("text")].map((text) =>
  parseFloat(getComputedStyle(text).fontSize) * scale(svg)));
document.body.dataset.probe = JSON.stringify({
  charts, scripts: document.scripts.length, smallest: Math.min(...labels),
  wide: document.documentElement.scrollWidth, window: window.innerWidth,
  titles: [...document.querySelectorAll("h2")].map((h) => h.textContent),
});
</script>"""


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [CHROMIUM or "chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(
        [*command, page.as_uri()], capture_output=True, text=True, timeout=60, check=False
    )


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (stdlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_chromium_draws_the_charts_without_console_errors(tmp_path: Path) -> None:
    hostile = study(latest=Snapshot(study_id="NCT01234567", brief_title=XSS))
    page = tmp_path / "report.html"
    page.write_text(render_report([hostile, many_versions(60)], generated_at=NOW))

    shot = tmp_path / "report.png"
    drawn = chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    console = [line for line in drawn.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no script errors, no blocked or failed loads
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1280, 2000)
    assert shot.stat().st_size > 30_000
    assert len(set(pixels)) > 50  # not one flat colour: text, bands and lines were drawn

    probed = tmp_path / "probe.html"
    text = page.read_text()
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    probed.write_text(text.replace("</body>", PROBE + "</body>"))
    dumped = chromium(tmp_path, probed, "--dump-dom", "--window-size=1280,2000")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    match = re.search(r'data-probe="([^"]*)"', dumped.stdout)
    assert match, dumped.stdout[:2000]
    probe = json.loads(html.unescape(match.group(1)))
    assert probe["scripts"] == 1  # the probe itself: the hostile title made no script
    assert probe["titles"][0] == XSS  # shown as text
    assert len(probe["charts"]) == 6
    for label, chart_width, chart_height in probe["charts"]:
        assert chart_width > 600 and chart_height > 50, (label, chart_width, chart_height)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
@pytest.mark.parametrize("width", [390, 1280])
def test_the_report_reads_on_a_phone_and_a_desktop(tmp_path: Path, width: int) -> None:
    """At a phone's width the phone drawings are shown (labels of 11 px or more, not 5) and
    nothing scrolls sideways; at 1280 px the wide ones. (Chromium's command line keeps its
    window 500 px wide at least: the Selenium suite checks 390 px on the web app's pages.)"""
    page = render_report([study(), many_versions(60)], generated_at=NOW)
    probed = tmp_path / "probe.html"
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dumped = chromium(tmp_path, probed, "--dump-dom", f"--window-size={width},2000")
    match = re.search(r'data-probe="([^"]*)"', dumped.stdout)
    assert match, dumped.stderr[-2000:]
    probe = json.loads(html.unescape(match.group(1)))
    assert len(probe["charts"]) == 6  # one drawing of each chart shown
    assert probe["smallest"] >= 11, probe["smallest"]
    assert probe["wide"] <= probe["window"], (probe["wide"], probe["window"])


# ---- the status band (issue 25) ---------------------------------------------------------------


def band_shapes(versions: tuple[VersionPoint, ...], as_of: date, **options: Any) -> list[Any]:
    return list(status_band(versions, as_of, **options).chart.shapes)


def test_the_status_band_starts_where_the_trial_did_not_at_the_first_stored_version() -> None:
    # watched from its third version on: the band still starts at the registration
    versions = study().versions[2:]
    shapes = band_shapes(versions, NOW.date(), registered=date(2021, 3, 1))
    first = next(s for s in shapes if isinstance(s, Rect))
    assert first.x == 8 and first.data_status == ""  # from the chart's left edge
    assert first.title == "No version stored before 2022-02-14"
    assert first.width > 100  # a year of the six on the axis had no stored version
    figure = status_band(versions, NOW.date(), registered=date(2021, 3, 1))
    assert "No version stored" in [k.text for k in figure.keys]
    # without a registration date, the record's start date (2021-06-01) begins the axis
    assert band_shapes(versions, NOW.date())[0].title == "No version stored before 2022-02-14"


def test_a_few_days_of_a_recent_status_are_drawn_and_labelled() -> None:
    as_of = NOW.date()
    versions = (
        point(0, "2018-01-10", "RECRUITING"),
        point(1, (as_of - timedelta(days=4)).isoformat(), "TERMINATED"),
    )
    for width_chart in status_band(versions, as_of).charts:
        rects = [s for s in width_chart.shapes if isinstance(s, Rect)]
        terminated = next(r for r in rects if r.data_status == "TERMINATED")
        assert terminated.width >= 3  # visible, never a hairline
        texts = [s.text for s in width_chart.shapes if isinstance(s, Text)]
        assert "Terminated" in texts, width_chart.width  # named above the band


def test_primary_completion_and_completion_lines_never_hide_each_other() -> None:
    versions = study().versions  # the last version gives both as 2025-03-31
    assert versions[-1].primary_completion.date == versions[-1].completion.date
    for drawn in status_band(versions, NOW.date()).charts:
        lines = {
            s.stroke: s.x1 for s in drawn.shapes if isinstance(s, Line) and s.stroke in COLOURS
        }
        assert set(lines) == set(COLOURS)
        assert abs(lines[COLOURS[0]] - lines[COLOURS[1]]) >= 4
    chart, _ = dates_chart(versions)
    last = {
        s.stroke: s.cy
        for s in chart.shapes
        if isinstance(s, Circle) and s.stroke in COLOURS and "v5" in s.title
    }
    assert abs(last[COLOURS[0]] - last[COLOURS[1]]) >= 3  # side by side, not one on the other


COLOURS = ("#c2410c", "#4338ca")  # primary completion, completion (DATE_SERIES)
