"""What an attacker (or a slip of the keyboard) tried, fixed as classes: documents nested or
sized to exhaust the parser, numbers that overflow timers, credentials in URLs, address forms
that smuggle a private IPv4 address through the gate, device nodes as output files, and a
health port that cannot be had. Each is one line and exit 2 (or a per-study failure), never a
traceback, a hang or a leak."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import socket
import stat
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import twconfig
from click.testing import CliRunner
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import WebhookReceiver, make_message

from service.bulk import import_bulk
from service.cli import cli
from service.cli_report import write_atomically
from service.clock import utcnow
from service.errors import ConfigError, DeliveryError, InputError, UnsafeDocument
from service.logs import configure_logging
from service.netguard import BlockedURL, address_problem, check_url
from service.notify.apprise_sender import AppriseSender
from service.safeload import MAX_DEPTH, load_json, load_toml, read_bounded, read_stream_bounded
from service.settings import AppriseChannel, Section, load_settings
from service.store import Store
from service.urls import mask_url, mask_urls

DEEP = 100_000  # far past any recursion limit: json and tomllib used to raise RecursionError


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_toml(depth: int) -> str:
    return "a = " + nested_json(depth) + "\n"


def daemon_error(stderr: str) -> str:
    """The daemon logs its start (INFO) before it binds; the refusal is still one line."""
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("trialwatch: error: ")]
    assert stderr.rstrip().endswith(line)
    return line


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("trialwatch: error: ")
    return lines[0]


# ---- one safe loader ---------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, DEEP])
def test_json_nested_past_the_limit_is_refused_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(UnsafeDocument, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_json(nested_json(depth))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, DEEP])
def test_toml_nested_past_the_limit_is_refused_not_a_recursion_error(depth: int) -> None:
    with pytest.raises(UnsafeDocument, match="nested deeper"):
        load_toml(nested_toml(depth))


def test_documents_up_to_the_limit_and_real_records_load() -> None:
    assert load_json(nested_json(MAX_DEPTH)) == json.loads(nested_json(MAX_DEPTH))
    for path in sorted((TESTS_DATA / "records").glob("*.json")):
        wrapped = json.dumps({"studies": [json.loads(path.read_text())]})
        assert load_json(wrapped)["studies"]


def test_dotted_keys_cannot_build_a_deep_table_either() -> None:
    # tomllib builds a.b.c… without recursing; the depth check still sees the result
    with pytest.raises(UnsafeDocument):
        load_toml(".".join(f"k{i}" for i in range(MAX_DEPTH + 1)) + " = 1\n")


def test_reads_are_bounded_and_only_of_regular_files(tmp_path: Path) -> None:
    exact = tmp_path / "exact.json"
    exact.write_bytes(b"1" * 100)
    assert read_bounded(exact, 100) == b"1" * 100
    with pytest.raises(UnsafeDocument, match="larger than 99 bytes"):
        read_bounded(exact, 99)
    with pytest.raises(UnsafeDocument, match="not a regular file"):
        read_bounded(Path("/dev/zero"), 1024)
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening a FIFO for reading blocks until a writer comes: it must not
    with pytest.raises(UnsafeDocument, match="not a regular file"):
        read_bounded(fifo, 1024)


def test_a_stream_is_read_no_further_than_its_limit() -> None:
    stream = io.BytesIO(b"x" * 10_000)
    with pytest.raises(UnsafeDocument):
        read_stream_bounded(stream, 1000)
    assert stream.tell() == 1001  # a declared size is not trusted, the read itself stops


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("/dev/zero", "config file /dev/zero: not a regular file"),
        ("deep.toml", "config file deep.toml: nested deeper than 64 levels"),
        ("big.toml", "config file big.toml: larger than 1 MiB"),
        ("fifo.toml", "config file fifo.toml: not a regular file"),
    ],
)
def test_a_config_file_that_would_exhaust_the_reader_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep.toml").write_text(nested_toml(DEEP))
    (tmp_path / "big.toml").write_text("# padding\n" * 200_000)
    os.mkfifo(tmp_path / "fifo.toml")  # no writer ever comes: reading it would block forever
    env = {"TRIALWATCH_CONFIG": config, "TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"}
    result = CliRunner().invoke(cli, ["watch", "list"], env=env)
    assert result.exit_code == 2
    assert one_line_error(result.stderr) == f"trialwatch: error: {message}"
    assert not (tmp_path / "t.db").exists()  # nothing was written


def test_a_seed_file_nested_too_deeply_stops_the_load(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "deep.toml").write_text('id = "deep-seed"\n' + nested_toml(DEEP))
    run = twconfig.runner({"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    result = run("seeds", "load", str(seeds))
    assert result.exit_code == 2
    assert one_line_error(result.stderr).endswith(
        f"{seeds / 'deep.toml'}: nested deeper than 64 levels"
    )
    assert run("seeds", "list", "--json").json() == []


def test_diff_of_a_deep_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(nested_json(DEEP))
    study = TESTS_DATA / "demo" / "NCT05605665" / "v0.json"
    result = CliRunner().invoke(cli, ["diff", str(tmp_path / "deep.json"), str(study)], env={})
    assert result.exit_code == 2
    assert one_line_error(result.stderr).endswith("deep.json: nested deeper than 64 levels")


# ---- a registry answer nested too deeply fails its studies, not the cycle -------------------


def test_a_too_deep_registry_answer_fails_the_page_and_the_next_sync_recovers(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    registry = emulator_factory()
    record = json.loads((TESTS_DATA / "demo" / "NCT05605665" / "v0.json").read_text())
    poisoned = json.loads(json.dumps(record))
    poisoned["protocolSection"]["descriptionModule"]["briefSummary"] = json.loads(
        nested_json(200)  # parses (under the recursion limit) but is refused by depth
    )
    registry.publish(poisoned, date="2022-11-08")
    config = twconfig.ctgov(registry.api_url, registry.history_url, history=False)
    run = twconfig.runner(twconfig.environment(tmp_path, config, f"sqlite:///{tmp_path}/t.db"))
    run("watch", "add", "NCT05605665")

    failed = run("sync", "--json")
    assert failed.exit_code == 1, failed.stderr
    report = failed.json()
    assert report["failed"] == 1
    [error] = report["errors"]
    assert error["reason"] == "invalid" and "nested deeper than 64 levels" in error["error"]

    registry.publish(record, date="2022-11-09")
    recovered = run("sync", "--json")
    assert recovered.exit_code == 0, recovered.stderr
    assert recovered.json()["new"] == 1


class _DeepRegistry(BaseHTTPRequestHandler):
    """A registry whose every answer is JSON nested 100,000 deep (a few hundred KiB)."""

    def do_GET(self) -> None:
        body = nested_json(DEEP).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_answer_past_the_recursion_limit_fails_the_studies_not_the_cycle(
    tmp_path: Path,
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeepRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        config = twconfig.ctgov(f"{base}/api/v2", f"{base}/api/int", history=False)
        env = twconfig.environment(tmp_path, config, f"sqlite:///{tmp_path}/t.db")
        run = twconfig.runner(env)
        run("watch", "add", "NCT05605665", "NCT00763412")
        result = run("sync", "--json")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.stderr  # done, with failed studies: not a crash
    report = result.json()
    assert report["failed"] == 2
    assert {e["reason"] for e in report["errors"]} == {"invalid"}
    assert all("nested deeper than 64 levels" in e["error"] for e in report["errors"])


# ---- bulk zip members are read bounded -------------------------------------------------------


def test_an_oversized_or_deep_bulk_member_is_one_unreadable_file_and_memory_stays_small(
    tmp_path: Path, sqlite_url: str
) -> None:
    archive = tmp_path / "bulk.zip"
    record = (TESTS_DATA / "demo" / "NCT05605665" / "v0.json").read_bytes()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("huge.json", "w", force_zip64=True) as member:
            chunk = b" " * (1024 * 1024)
            for _ in range(100):  # 100 MiB inflated, about 100 KiB in the zip
                member.write(chunk)
        zf.writestr("deep.json", nested_json(DEEP))
        zf.writestr("NCT05605665.json", record)
    store = Store.open(sqlite_url)
    tracemalloc.start()
    try:
        report = import_bulk(store, archive, clock=utcnow, watch_all=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert peak < 32 * 1024 * 1024, peak  # the 100 MiB member was never read into memory
    assert report.read == 3 and report.stored == 1
    errors = {bad["file"]: bad["error"] for bad in report.invalid}
    assert errors["huge.json"].startswith("larger than 64 MiB")
    assert errors["deep.json"] == "nested deeper than 64 levels"


# ---- numeric settings are bounded -----------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[schedule]\nsync_every_seconds = 1e17\n",
            "setting schedule.sync_every_seconds: Input should be less than or equal to",
        ),
        (
            "[schedule]\nsync_every_seconds = 99999999999999999999\n",
            "setting schedule.sync_every_seconds",
        ),
        ("[ctgov]\ntimeout_seconds = inf\n", "setting ctgov.timeout_seconds: Input should be a"),
        ("[ctgov]\ntimeout_seconds = nan\n", "setting ctgov.timeout_seconds: Input should be a"),
        ("[ctgov]\nretry_max_seconds = -inf\n", "setting ctgov.retry_max_seconds"),
        ("[ctgov]\nhistory_gap_seconds = -1\n", "setting ctgov.history_gap_seconds"),
        ("[delivery]\nlease_seconds = 1e300\n", "setting delivery.lease_seconds"),
        ("[daemon]\nhealth_port = 1e17\n", "setting daemon.health_port"),
    ],
)
def test_huge_infinite_or_negative_numbers_are_one_line_naming_the_setting(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "trialwatch.toml"
    config.write_text(toml)
    env = {"TRIALWATCH_CONFIG": str(config), "TRIALWATCH_DATABASE_URL": "sqlite:///x.db"}
    result = CliRunner().invoke(cli, ["watch", "list"], env=env)
    assert result.exit_code == 2
    assert message in one_line_error(result.stderr)


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-1"])
def test_a_bad_number_from_the_environment_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TRIALWATCH_CTGOV_REQUESTS_PER_SECOND": value})
    assert caught.value.message.startswith("setting ctgov.requests_per_second: ")
    assert caught.value.message.endswith("(from TRIALWATCH_CTGOV_REQUESTS_PER_SECOND)")


def test_every_number_of_every_section_is_bounded_even_without_its_own_limit() -> None:
    class Future(Section):  # a setting someone adds later, with no le= of its own
        budget_seconds: float = 1.0
        count: int = 1

    assert Future(budget_seconds=86_400.0, count=10_000).count == 10_000
    for too_big in ({"budget_seconds": 1e17}, {"count": 10**20}):
        with pytest.raises(ValueError, match="too large"):
            Future(**too_big)


# ---- command-line numbers and dates are bounded ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["outbox", "replay", "99999999999999999999"], "is not in the range 1<=x<="),
        (["changes", "--limit", "99999999999999999999"], "is not in the range 1<=x<="),
        (["changes", "--since", "9999-12-31"], "--since '9999-12-31' is in the future"),
        (["changes", "--since", "9999-12-31T23:59:59-05:00"], "is out of range"),
        (["changes", "--since", "0001-01-01T00:00:00+05:00"], "is out of range"),
    ],
)
def test_out_of_range_arguments_exit_2_not_a_store_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = twconfig.runner({"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_a_since_of_today_in_any_time_zone_is_still_accepted(tmp_path: Path) -> None:
    run = twconfig.runner({"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    from datetime import UTC, datetime, timedelta

    tomorrow = (datetime.now(UTC) + timedelta(hours=13)).date().isoformat()
    assert run("changes", "--since", tomorrow, "--json").json() == []


# ---- the health server ----------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Any:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_a_health_port_in_use_is_one_line_exit_2(tmp_path: Path, taken_port: int) -> None:
    run = twconfig.runner({"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    result = run("run", "--health-port", str(taken_port))
    assert result.exit_code == 2
    line = daemon_error(result.stderr)
    assert f"cannot listen on 127.0.0.1:{taken_port} (Address already in use)" in line


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1", "999.1.1.1"])
def test_a_health_host_that_is_not_this_machines_is_one_line_exit_2(
    tmp_path: Path, host: str
) -> None:
    env = {
        "TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
        "TRIALWATCH_HEALTH_HOST": host,
        "TRIALWATCH_HEALTH_PORT": "1",  # never bound: the host fails first
    }
    result = twconfig.runner(env)("run")
    assert result.exit_code == 2
    line = daemon_error(result.stderr)
    assert f"setting daemon.health_port/health_host: cannot listen on {host}:1" in line


# ---- credentials in URLs are masked everywhere ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h/db?password=s3cret&sslmode=require",
         "postgresql://u:***@h/db?password=***&sslmode=require"),
        ("https://hooks.example.org/x?token=abc&channel=1",
         "https://hooks.example.org/x?token=***&channel=1"),
        ("https://s3.example.org/o?X-Amz-Signature=ab12&X-Amz-Date=20261101",
         "https://s3.example.org/o?X-Amz-Signature=***&X-Amz-Date=20261101"),
        ("https://h.example.org/p?api_key=k#access_token=t",
         "https://h.example.org/p?api_key=***#access_token=***"),
        ("sqlite:///var/trialwatch.db", "sqlite:///var/trialwatch.db"),
        ("https://h.example.org/p?page=2", "https://h.example.org/p?page=2"),
    ],
)  # fmt: skip
def test_mask_url_hides_passwords_and_secret_query_values_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert mask_urls(f"POST {url} -> 200") == f"POST {shown} -> 200"


def test_a_database_password_in_the_query_is_masked_in_errors_and_logs(tmp_path: Path) -> None:
    secret = "qu3ry-pa55word-never-shown"
    url = f"postgresql://trialwatch@127.0.0.1:1/none?password={secret}"
    env = {"TRIALWATCH_DATABASE_URL": url, "TRIALWATCH_CONFIG": ""}
    for args in (["-vv", "watch", "list"], ["init"]):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 1
        assert "password=***" in result.stderr
        assert secret not in result.stdout + result.stderr


def test_a_webhook_token_in_the_query_never_reaches_the_debug_log(
    emulator_factory: Callable[..., Emulator],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    token = "hook-t0ken-never-logged"
    registry = emulator_factory()
    record = json.loads((TESTS_DATA / "demo" / "NCT05605665" / "v0.json").read_text())
    registry.publish(record, date="2022-11-08")
    config = (
        twconfig.ctgov(registry.api_url, registry.history_url, history=False)
        + twconfig.webhook(f"{webhook_receiver.url}/in?token={token}")
        + twconfig.subscription("hook", kinds=["record_added"])
    )
    run = twconfig.runner(twconfig.environment(tmp_path, config, f"sqlite:///{tmp_path}/t.db"))
    outputs = [run("-vv", *args) for args in (["watch", "add", "NCT05605665"], ["sync"])]
    delivered = run("-vv", "notify", "--json")
    assert delivered.exit_code == 0, delivered.stderr
    assert webhook_receiver.requests  # the token was really used …
    assert "token=***" in delivered.stderr  # … the request was logged …
    for result in [*outputs, delivered]:
        assert token not in result.output  # … and never shown


@pytest.mark.parametrize("fmt", ["human", "json"])
def test_urls_in_log_lines_and_tracebacks_are_masked(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(2, fmt, [])
    try:
        try:
            raise RuntimeError("POST https://hooks.example.org/x?sig=t0p-secret failed")
        except RuntimeError:
            logging.getLogger("trialwatch.test").exception(
                "sending to %s", "https://user:pa55-secret@hooks.example.org/x"
            )
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    logged = capsys.readouterr().err
    assert "t0p-secret" not in logged and "pa55-secret" not in logged
    assert "sig=***" in logged and "user:***@hooks.example.org" in logged


def test_a_url_setting_that_is_refused_is_shown_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TRIALWATCH_CTGOV_API_URL": "ftp://u:pw@h.example.org/?token=t"})
    assert "'ftp://u:***@h.example.org/?token=***' is not an http(s) URL" in caught.value.message


# ---- the address gate: embedded IPv4 forms, and apprise ------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("64:ff9b::7f00:1", "loopback (NAT64 form of 127.0.0.1)"),
        ("64:ff9b::a9fe:a9fe", "link-local (NAT64 form of 169.254.169.254)"),
        ("64:ff9b:1::a00:1", "NAT64 local-use"),
        ("2002:a00:1::1", "private (6to4 form of 10.0.0.1)"),
        ("2002:7f00:1::", "loopback (6to4 form of 127.0.0.1)"),
        ("::127.0.0.1", "loopback (IPv4-compatible form of 127.0.0.1)"),
        ("::a9fe:a9fe", "link-local (IPv4-compatible form of 169.254.169.254)"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:0:c0a8:1", "private (IPv4-translated form of 192.168.0.1)"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo, client obfuscated
    ],
)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(address: str, problem: str) -> None:
    assert problem in (address_problem(ipaddress.ip_address(address)) or "")

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    with pytest.raises(BlockedURL, match="allow_private_network"):
        check_url("https://hooks.example.org/x", False, resolve=resolve)


@pytest.mark.parametrize(
    "address", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"]
)
def test_embedded_public_ipv4_addresses_still_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")
def test_apprise_urls_naming_a_private_host_are_refused_unless_allowed(
    webhook_receiver: WebhookReceiver,
) -> None:
    pytest.importorskip("apprise")
    url = webhook_receiver.url.replace("http://", "json://")
    gated = AppriseChannel(name="chat", type="apprise", urls=[url])
    with pytest.raises(DeliveryError) as caught:
        AppriseSender(gated).send(make_message())
    assert "URL #1: host 127.0.0.1 resolves to 127.0.0.1, a loopback address" in str(caught.value)
    assert not caught.value.retryable and webhook_receiver.requests == []
    allowed = gated.model_copy(update={"allow_private_network": True})
    AppriseSender(allowed).send(make_message())
    assert len(webhook_receiver.requests) == 1


# ---- report --out never replaces a device node ------------------------------------------------


def test_report_refuses_a_device_or_fifo_as_its_output(tmp_path: Path) -> None:
    run = twconfig.runner({"TRIALWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/t.db"})
    fifo = tmp_path / "report.html"
    os.mkfifo(fifo)
    link = tmp_path / "null.html"
    link.symlink_to("/dev/null")
    for target in ("/dev/full", str(fifo), str(link)):
        result = run("report", "--out", target)
        assert result.exit_code == 2
        assert one_line_error(result.stderr) == (
            f"trialwatch: error: --out {target}: exists and is not a regular file; "
            "refusing to replace it"
        )
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_write_atomically_checks_the_target_again_just_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    os.mkfifo(target)  # appeared after the command's first check
    with pytest.raises(InputError, match="not a regular file"):
        write_atomically(target, "<html></html>")
    assert stat.S_ISFIFO(os.stat(target).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temp file left behind
