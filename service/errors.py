"""The one exception tree of trialwatch.

    TrialwatchError                 every error the service raises on purpose
    ├── ConfigError                 a wrong setting or config file          (exit 2)
    ├── InputError                  a bad argument, id or input file         (exit 2)
    │   └── UnsafeDocument          a file or answer too large or too deeply nested to read
    ├── RegistryError               talking to a registry went wrong
    │   ├── RegistryUnavailable     unreachable, 429/5xx/timeouts after retries
    │   ├── RecordNotFound          the registry does not serve this record (404)
    │   └── RecordInvalid           the answer is not a usable record (HTML, truncated, drifted)
    ├── StoreError                  the database could not be opened or written
    │   ├── StoreConflict           another process wrote the same thing first (per study)
    │   └── StoreRefused            the database refused one record's data (a value it cannot hold)
    └── DeliveryError               a notification could not be delivered (``retryable``)

Errors carry a one-line, user-facing message; the CLI prints it and maps the class to an exit
code (``exit_code``).
"""

from __future__ import annotations


class TrialwatchError(Exception):
    """Base of every error trialwatch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TrialwatchError):
    """A setting is wrong; nothing has been done."""

    exit_code = 2


class InputError(TrialwatchError):
    """A command argument or input file is wrong; nothing has been written."""

    exit_code = 2


class UnsafeDocument(InputError):
    """A JSON or TOML document refused before or while parsing it: too large, nested too
    deeply, or not a regular file. Callers name the document (and may translate the class:
    a registry answer becomes ``RecordInvalid``, a config file ``ConfigError``)."""


class RegistryError(TrialwatchError):
    """Talking to a registry failed."""


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or kept failing after retries."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestAbandoned(RegistryUnavailable):
    """A request given up because trialwatch is stopping: nothing is wrong with the record,
    and nothing in its place may be stored (the next cycle asks again)."""


class RecordNotFound(RegistryError):
    """The registry does not serve this record."""


class RecordInvalid(RegistryError):
    """The registry answered, but not with a record trialwatch can read."""


class StoreError(TrialwatchError):
    """The store could not be opened, migrated or written."""


class StoreConflict(StoreError):
    """Another process (a second ``sync``, the daemon) stored the same version first: nothing
    was written, and nothing is lost. A sync reports it for that study and goes on."""


class StoreRefused(StoreError):
    """The database answered but refused what was written for one record (a value it cannot
    hold, a constraint broken): nothing was written. That record fails (``internal``); a
    sync goes on with the others, unlike a store that is down, locked or full."""


class StoreTimeout(StoreError):
    """A read took longer than its statement timeout (``[web] statement_timeout_seconds``) and
    was stopped: the web app answers 503 with one line, and the store is fine."""


class DeliveryError(TrialwatchError):
    """A notification could not be delivered; ``retryable`` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
