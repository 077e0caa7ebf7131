"""Every command refuses bad input the same way: one line on stderr naming the problem,
exit 2, and nothing written. The README's table of bad inputs is this list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from service.cli import cli
from service.store import Store

BAD_INPUTS: list[tuple[list[str], str]] = [
    (["watch", "add", "NCT123"], "'NCT123' is not a ClinicalTrials.gov id"),
    (["watch", "add", "nct05605665x"], "'nct05605665x' is not a ClinicalTrials.gov id"),
    (["watch", "add", "NCT05605665", "NCT0560566'; DROP TABLE x;--"], "is not a ClinicalTrials"),
    (["watch", "add"], "Missing argument 'ID...'"),
    (["watch", "remove", "NCT00000001"], "not watched: NCT00000001"),
    (["sync", "NCT09999999"], "not watched: NCT09999999 (add it first"),
    (["sync", "NCT1"], "'NCT1' is not a ClinicalTrials.gov id"),
    (["history", "12345"], "'12345' is not a registry id trialwatch watches"),
    (["changes", "--study", "x"], "'x' is not a registry id trialwatch watches"),
    (["changes", "--since", "yesterday"], "--since 'yesterday' is not an ISO date"),
    (["changes", "--kind", "status_change"], "Invalid value for '--kind'"),
    (["diff", "missing.json", "missing.json"], "missing.json: no such file"),
    (["diff", "garbage.json", "study.json"], "garbage.json: not JSON"),
    (["diff", "list.json", "study.json"], "list.json: not a ClinicalTrials.gov study record"),
    (["outbox", "replay", "12345"], "no dead or sent notification with id 12345"),
    (["outbox", "replay", "abc"], "'abc' is not a valid integer"),
    (["report", "NCT05605665", "--out", "r.html"], "not in the store: NCT05605665"),
    (["report", "--out", "no/such/dir/r.html"], "no/such/dir"),
    (["seeds", "load", "bad-seeds"], "bad-seeds/x.toml"),
    (["seeds", "load", "no-such-dir"], "no-such-dir"),
    (["healthcheck"], "no health port"),
    (["run", "--health-port", "70000"], "70000 is not in the range"),
    (["--config", "missing.toml", "watch", "list"], "config file missing.toml: not found"),
    (["import-bulk", "garbage.json"], "garbage.json: not a zip file"),
    (["nonsense"], "No such command 'nonsense'"),
    # issue 12: non-ASCII digits, documents built to exhaust the parser, numbers and dates out
    # of range, device nodes as files, non-finite settings
    (
        ["watch", "add", "NCT０５６０５６６５"],
        "'NCT０５６０５６６５' is not a ClinicalTrials.gov id",
    ),
    (["outbox", "replay", "99999999999999999999"], "99999999999999999999 is not in the range"),
    (["changes", "--limit", "99999999999999999999"], "99999999999999999999 is not in the range"),
    (["changes", "--since", "9999-12-31"], "--since '9999-12-31' is in the future"),
    (["diff", "deep.json", "study.json"], "deep.json: nested deeper than 64 levels"),
    (["diff", "/dev/zero", "study.json"], "/dev/zero: not a regular file"),
    (["report", "--out", "/dev/full"], "--out /dev/full: exists and is not a regular file"),
    (["seeds", "load", "deep-seeds"], "deep-seeds/x.toml: nested deeper than 64 levels"),
    (["--config", "/dev/zero", "watch", "list"], "config file /dev/zero: not a regular file"),
    (["import-bulk", "/dev/zero"], "/dev/zero: not a regular file"),
    (["--config", "deep.toml", "watch", "list"], "config file deep.toml: nested deeper than 64"),
    (
        ["--config", "huge.toml", "watch", "list"],
        "setting schedule.sync_every_seconds: Input should be less than or equal to 31622400",
    ),
    (
        ["--config", "inf.toml", "watch", "list"],
        "setting ctgov.timeout_seconds: Input should be a finite number",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.json").write_text("garbage")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "study.json").write_text(
        '{"protocolSection": {"identificationModule": {"nctId": "NCT05605665"}}}'
    )
    (tmp_path / "bad-seeds").mkdir()
    (tmp_path / "bad-seeds" / "x.toml").write_text('id = "x"\ntitel = "typo"\n')
    deep = "[" * 100_000 + "]" * 100_000  # past the recursion limit of json and tomllib
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep.toml").write_text(f"a = {deep}\n")
    (tmp_path / "deep-seeds").mkdir()
    (tmp_path / "deep-seeds" / "x.toml").write_text(f'id = "deep-seed"\na = {deep}\n')
    (tmp_path / "huge.toml").write_text("[schedule]\nsync_every_seconds = 1e17\n")
    (tmp_path / "inf.toml").write_text("[ctgov]\ntimeout_seconds = inf\n")
    return tmp_path


@pytest.fixture
def trialwatch(workdir: Path, sqlite_url: str) -> Callable[..., Result]:
    env = {"TRIALWATCH_DATABASE_URL": sqlite_url, "TRIALWATCH_CONFIG": ""}

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    return run


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    trialwatch: Callable[..., Result], sqlite_url: str, args: list[str], message: str
) -> None:
    trialwatch("watch", "list")  # the store exists, empty
    store = Store.open(sqlite_url)
    before = store.count_rows()
    result = trialwatch(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert message in result.stderr
    # click's own usage errors add a usage line and a hint; ours are exactly one line
    if not any(
        word in message
        for word in ("Missing", "Invalid", "valid integer", "range", "No such command")
    ):
        assert len(lines) == 1, lines
        assert lines[0].startswith("trialwatch: error: ")
    assert store.count_rows() == before
    store.close()


def test_every_bad_input_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| input | message |") :]
    missing = [" ".join(args) for args, _ in BAD_INPUTS if f"`{' '.join(args)}`" not in table]
    assert missing == []


def test_an_unreachable_database_is_one_line_naming_it_without_the_password(
    workdir: Path,
) -> None:
    url = "postgresql://trialwatch:s3cret@127.0.0.1:1/none"
    result = CliRunner().invoke(
        cli, ["watch", "list"], env={"TRIALWATCH_DATABASE_URL": url, "TRIALWATCH_CONFIG": ""}
    )
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("trialwatch: error: store postgresql+psycopg://trialwatch:***@")
    assert "s3cret" not in result.stderr
