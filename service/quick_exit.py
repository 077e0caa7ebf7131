"""Ending a one-shot command without tearing the interpreter down.

When a command is done, CPython's own exit takes every module apart and frees its objects
one by one: ~20 ms of a ~0.5 s one-shot ``trialwatch sync`` (10⁵ objects of SQLAlchemy,
pydantic and the store's tables), paid on every run of a cron job that syncs every few
minutes, for memory the operating system takes back anyway. ``leave`` does what that exit
does that anyone can see: it flushes standard output and error, runs the ``atexit`` handlers
(logging's flush and close, temporary directories' clean-up), and ends the process with the
command's exit status. The store needs nothing more: each transaction committed when its
method returned, and SQLite's write-ahead log is as safe after ``_exit`` as after a clean
close.

It leaves the ordinary way (raising ``SystemExit``) whenever that is not plainly the same:
another thread is still running (the interpreter would wait for it), the status is a message
rather than a number, or standard output cannot be flushed (a closed pipe: the interpreter
reports that as it always does)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def leave(code: object) -> NoReturn:
    """End the process with ``code`` (``SystemExit``'s: None, a number or a message)."""
    if code is None:
        code = 0
    if not isinstance(code, int) or threading.active_count() > 1 or not _flushed():
        raise SystemExit(code)
    atexit._run_exitfuncs()  # what the interpreter's own exit would run first
    _flushed()  # what the handlers wrote
    os._exit(code & 0xFF)


def _flushed() -> bool:
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):  # a closed pipe, a closed stream
        return False
    return True
