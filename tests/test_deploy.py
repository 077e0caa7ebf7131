"""The deployment files work as shipped: the image's entry point loads the seeds before the
daemon starts and health is reachable; the systemd unit verifies without a user or a state
directory made by hand; the examples load, keep secrets out, and name only seeds that exist;
a subscription naming an unknown seed or tag stops `run` and `notify` with one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TESTS_DATA
from ctgov_emulator import Emulator
from notify_servers import free_port, wait_until
from sqlalchemy.engine import make_url

from service.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
UNIT = ROOT / "deploy" / "trialwatch.service"
EXAMPLES = ROOT / "config" / "examples"
BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIALWATCH_", "PG"))}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra}


def trialwatch(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trialwatch"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_image_loads_the_seeds_at_start_and_serves_health_on_every_interface() -> None:
    assert 'ENTRYPOINT ["trialwatch-entrypoint"]' in DOCKERFILE
    assert "COPY deploy/docker-entrypoint.sh /usr/local/bin/trialwatch-entrypoint" in DOCKERFILE
    assert re.search(r"TRIALWATCH_HEALTH_HOST=0\.0\.0\.0", DOCKERFILE)
    assert 'CMD ["trialwatch", "run"]' in DOCKERFILE and "COPY seeds ./seeds" in DOCKERFILE
    assert os.access(ENTRYPOINT, os.X_OK)


@pytest.mark.timeout(120)
def test_the_entry_point_inits_loads_seeds_then_runs_the_daemon(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    registry = emulator_factory()
    registry.publish(json.loads((TESTS_DATA / "demo" / "NCT05605665" / "v1.json").read_text()))
    app = tmp_path / "app"  # laid out like the image's /app
    shutil.copytree(ROOT / "seeds", app / "seeds")
    (app / "var").mkdir()
    port = free_port()
    env = clean_env(
        TRIALWATCH_CTGOV_API_URL=registry.api_url,
        TRIALWATCH_CTGOV_HISTORY_URL=registry.history_url,
        TRIALWATCH_HEALTH_PORT=str(port),
        TRIALWATCH_HEALTH_HOST="0.0.0.0",
        TRIALWATCH_SEEDS_DIR=str(app / "seeds"),
    )
    daemon = subprocess.Popen(
        ["sh", str(ENTRYPOINT), "trialwatch", "run"], cwd=app, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # the image's HEALTHCHECK, as it runs: no --host, the port from the environment
        wait_until(lambda: trialwatch("healthcheck", cwd=app, env=env).returncode == 0,
                   timeout=60, what="the container's health check")  # fmt: skip
        wait_until(lambda: trialwatch("healthcheck", "--ready", cwd=app, env=env).returncode == 0,
                   timeout=60, what="the first sync of the seeds' registrations")  # fmt: skip
    finally:
        daemon.send_signal(signal.SIGTERM)  # exec: the signal reaches trialwatch itself
        assert daemon.wait(timeout=30) == 0
    watched = json.loads(trialwatch("watch", "list", "--json", cwd=app, env=env).stdout)
    assert "seed:il2-rapamycin-ss-nct05605665" in next(
        w["tags"] for w in watched if w["study_id"] == "NCT05605665"
    )
    assert (app / "var" / "trialwatch.db").is_file()


def test_the_systemd_unit_needs_no_user_or_state_directory_made_by_hand(tmp_path: Path) -> None:
    unit = UNIT.read_text()
    assert re.search(r"^DynamicUser=yes$", unit, re.M)
    assert re.search(r"^StateDirectory=trialwatch$", unit, re.M)
    assert re.search(r"^WorkingDirectory=/var/lib/trialwatch$", unit, re.M)
    assert "TRIALWATCH_CONFIG=" not in unit.split("[Service]")[1].split("#")[0]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verified as installed: the venv path of the unit pointing at a real trialwatch
    local = tmp_path / "trialwatch.service"
    local.write_text(unit.replace("/opt/trialwatch/.venv/bin", str(BIN)))
    checked = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    problems = [
        line for line in checked.stderr.splitlines()
        if local.name in line and ("Unknown" in line or "Failed" in line or "bad" in line)
    ]  # fmt: skip
    assert checked.returncode == 0 and problems == [], checked.stderr


def test_the_production_example_keeps_the_password_out_and_health_reachable() -> None:
    settings = load_settings(EXAMPLES / "production.toml", environ={})
    assert settings.daemon.health_host == "0.0.0.0" and settings.daemon.health_port
    assert make_url(settings.database.url).password is None
    text = (EXAMPLES / "production.toml").read_text()
    assert "PGPASSWORD" in text and "TRIALWATCH_DATABASE_URL" in text
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "PGPASSWORD: ${POSTGRES_PASSWORD" in compose
    assert "postgresql://trialwatch@db:5432/trialwatch" in compose  # no password in the URL


def test_the_digest_example_names_seeds_that_exist(tmp_path: Path) -> None:
    env = clean_env(TRIALWATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'tw.db'}",
                    TRIALWATCH_CONFIG=str(EXAMPLES / "digest.toml"))  # fmt: skip
    assert trialwatch("seeds", "load", str(ROOT / "seeds"), cwd=tmp_path, env=env).returncode == 0
    notified = trialwatch("notify", cwd=tmp_path, env=env)
    assert notified.returncode == 0, notified.stderr
    stored = {s["seed"] if "seed" in s else s["id"] for s in json.loads(
        trialwatch("seeds", "list", "--json", cwd=tmp_path, env=env).stdout)}  # fmt: skip
    named = set(re.findall(r'"seed:([a-z0-9-]+)"', (EXAMPLES / "digest.toml").read_text()))
    assert named and named <= stored


@pytest.mark.parametrize(
    ("selector", "named"),
    [
        ("seed:leflunomide-pss-2012", "no seed 'leflunomide-pss-2012' in the store"),
        ("tag:sjogren", "no watched record has the tag 'sjogren'"),
    ],
)
@pytest.mark.parametrize("command", [["notify"], ["run", "--health-port", "0"]])
def test_a_subscription_naming_an_unknown_seed_or_tag_is_refused_at_start(
    tmp_path: Path, selector: str, named: str, command: list[str]
) -> None:
    config = tmp_path / "tw.toml"
    config.write_text(
        '[[channels]]\nname = "team"\ntype = "email"\nrecipients = ["a@example.org"]\n\n'
        '[[subscriptions]]\nchannel = "team"\nstudies = ["*"]\n\n'
        f'[[subscriptions]]\nchannel = "team"\nstudies = ["NCT05605665", "{selector}"]\n'
    )
    env = clean_env(TRIALWATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'tw.db'}",
                    TRIALWATCH_CONFIG=str(config))  # fmt: skip
    ran = trialwatch(*command, cwd=tmp_path, env=env)
    assert ran.returncode == 2
    # (a new store logs its migrations first: `run` logs at INFO)
    errors = [line for line in ran.stderr.splitlines() if line.startswith("trialwatch: error")]
    assert len(errors) == 1 and errors[0].startswith("trialwatch: error: subscription 2 ")
    assert named in errors[0] and "'team'" in errors[0]
    assert "daemon started" not in ran.stderr  # refused before the daemon did anything


def test_a_sync_with_nothing_watched_says_how_to_watch_something(tmp_path: Path) -> None:
    env = clean_env(TRIALWATCH_DATABASE_URL=f"sqlite:///{tmp_path / 'tw.db'}")
    ran = trialwatch("sync", cwd=tmp_path, env=env)
    assert ran.returncode == 0
    assert "nothing is watched" in ran.stderr
    assert "trialwatch watch add" in ran.stderr and "trialwatch seeds load" in ran.stderr
