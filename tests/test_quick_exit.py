"""A one-shot command ends without tearing the interpreter down (``service.quick_exit``), yet
the caller sees what an ordinary exit gives: every byte of its output, its exit status, the
``atexit`` handlers run (logging's flush, temporary directories' clean-up); and a process
with a thread still at work waits for it, as the interpreter would. Real processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    program = textwrap.dedent(script).replace("TMP", str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_leaving_delivers_all_output_the_status_and_the_exit_handlers(tmp_path: Path) -> None:
    done = run(
        """
        import atexit, logging, pathlib, sys, tempfile
        from service.quick_exit import leave
        logging.basicConfig(filename="TMP/log.txt", level=logging.INFO)
        logging.info("logged before leaving")
        scratch = tempfile.TemporaryDirectory()
        pathlib.Path("TMP/scratch").write_text(scratch.name)
        atexit.register(lambda: pathlib.Path("TMP/atexit").write_text("ran"))
        sys.stdout.write("x" * 1_000_000 + "end")  # far more than a pipe holds
        sys.stderr.write("a warning")
        leave(3)
        """,
        tmp_path,
    )
    assert done.returncode == 3
    assert len(done.stdout) == 1_000_003 and done.stdout.endswith("end")
    assert done.stderr == "a warning"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert "logged before leaving" in (tmp_path / "log.txt").read_text()
    assert not Path((tmp_path / "scratch").read_text()).exists()  # cleaned up


def test_a_message_or_a_running_thread_leaves_the_ordinary_way(tmp_path: Path) -> None:
    message = run("from service.quick_exit import leave\nleave('trialwatch: error: x')", tmp_path)
    assert (message.returncode, message.stderr.strip()) == (1, "trialwatch: error: x")
    waited = run(
        """
        import pathlib, threading, time
        from service.quick_exit import leave
        def work():
            time.sleep(0.5)
            pathlib.Path("TMP/thread").write_text("finished")
        threading.Thread(target=work).start()
        leave(0)
        """,
        tmp_path,
    )
    assert waited.returncode == 0, waited.stderr
    assert (tmp_path / "thread").read_text() == "finished"  # waited for, not cut off


def test_the_cli_keeps_its_documented_exit_statuses(tmp_path: Path) -> None:
    config = tmp_path / "tw.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "tw.db"}"\n')
    trialwatch = [sys.executable, "-m", "service", "--config", str(config)]
    ok = subprocess.run([*trialwatch, "watch", "list", "--json"], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "[]")
    bad = subprocess.run([*trialwatch, "watch", "add", "NCT123"], capture_output=True, text=True)
    assert bad.returncode == 2 and "NCT123" in bad.stderr
