"""The Dockerfile's steps, run here (no Docker engine on the build machines): build the wheel,
install it into a clean virtualenv, run `trialwatch --help`, start the daemon from a working
directory laid out like the image's /app, and pass its HEALTHCHECK command."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def run(*args: str | Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], check=True, capture_output=True, text=True, **options
    )  # type: ignore[call-overload]


def test_the_dockerfile_runs_the_daemon_as_a_user_with_a_health_check() -> None:
    assert re.search(r"^USER trialwatch$", DOCKERFILE, re.M)
    assert 'CMD ["trialwatch", "run"]' in DOCKERFILE
    assert "HEALTHCHECK" in DOCKERFILE and '"trialwatch", "healthcheck"' in DOCKERFILE
    assert 'VOLUME ["/app/var"]' in DOCKERFILE


@pytest.mark.timeout(300)
def test_the_image_steps_install_and_run_the_daemon(
    tmp_path: Path, emulator_factory: Callable[..., Emulator]
) -> None:
    wheels, venv, app = tmp_path / "wheels", tmp_path / "venv", tmp_path / "app"
    # stage 1: build the wheel (dependencies come from the package index, as in the image)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT)
    # stage 2: a clean environment with only the wheel and its dependencies
    run(sys.executable, "-m", "venv", venv)
    [wheel] = wheels.glob("trialwatch-*.whl")
    run(venv / "bin" / "pip", "install", "-q", wheel)
    shutil.copytree(ROOT / "config", app / "config")
    (app / "var").mkdir()
    trialwatch = venv / "bin" / "trialwatch"
    assert "Watch clinical-trial registry records" in run(trialwatch, "--help").stdout

    registry = emulator_factory([TESTS_DATA / "records"])
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRIALWATCH_")},
        "TRIALWATCH_CTGOV_API_URL": registry.api_url,
        "TRIALWATCH_CTGOV_HISTORY_URL": registry.history_url,
        "TRIALWATCH_HEALTH_PORT": str(port),
    }
    run(trialwatch, "watch", "add", "NCT00973089", cwd=app, env=env)
    daemon = subprocess.Popen(
        [trialwatch, "run"], cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:

        def healthy() -> bool:
            check = subprocess.run(
                [trialwatch, "healthcheck", "--port", str(port)], cwd=app, env=env,
                capture_output=True, text=True,
            )  # fmt: skip
            return check.returncode == 0 and '"status": "ok"' in check.stdout

        wait_until(healthy, timeout=60, what="the daemon's health check to pass")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    assert (app / "var" / "trialwatch.db").is_file()  # the store in the image's volume
