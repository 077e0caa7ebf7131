"""Settings: built-in defaults, then the TOML config file, then the environment.

Read once, by ``load_settings``, and passed in explicitly; no other module reads the
environment (secrets named by ``*_env`` keys are read where they are used, at send time, so
that they never sit in a settings object that might be logged).

The environment names are a fixed table (``ENVIRONMENT``) rather than a nesting scheme: the
contract's names (``TRIALWATCH_CTGOV_API_URL``) do not follow one, and secrets such as
``TRIALWATCH_WEBHOOK_SECRET`` share the prefix without being settings.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.errors import ConfigError, UnsafeDocument
from service.models import CHANGE_KINDS, OUTCOME_GRADES, Severity
from service.registry.ctgov_fields import API_URL, HISTORY_URL
from service.registry.ctis.fields import URL as CTIS_URL
from service.registry.euctr.fields import URL as EUCTR_URL
from service.registry.isrctn.fields import URL as ISRCTN_URL
from service.safeload import load_toml, read_bounded
from service.urls import is_secret_key, mask_url

DEFAULT_CONFIG_PATH = Path("config/trialwatch.toml")
CONFIG_ENV = "TRIALWATCH_CONFIG"

# environment name -> (section, key)
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "TRIALWATCH_DATABASE_URL": ("database", "url"),
    "TRIALWATCH_CTGOV_API_URL": ("ctgov", "api_url"),
    "TRIALWATCH_CTGOV_HISTORY_URL": ("ctgov", "history_url"),
    "TRIALWATCH_CTGOV_REQUESTS_PER_SECOND": ("ctgov", "requests_per_second"),
    "TRIALWATCH_EUCTR_URL": ("euctr", "url"),
    "TRIALWATCH_CTIS_API_URL": ("ctis", "api_url"),
    "TRIALWATCH_ISRCTN_API_URL": ("isrctn", "api_url"),
    "TRIALWATCH_HEALTH_PORT": ("daemon", "health_port"),
    "TRIALWATCH_HEALTH_HOST": ("daemon", "health_host"),
    "TRIALWATCH_LOG_FORMAT": ("daemon", "log_format"),
    "TRIALWATCH_WEB_HOST": ("web", "host"),
    "TRIALWATCH_WEB_PORT": ("web", "port"),
}


# No numeric setting needs more (about 31 years in seconds). Past it a number does not mean
# anything useful, it only overflows a timer, a socket timeout or a database integer far from
# the config file, as a traceback; fields with a tighter natural bound say so themselves.
NUMBER_CEILING = 1_000_000_000
HOUR, DAY = 3600, 86_400


class Section(BaseModel):
    # allow_inf_nan=False: `timeout_seconds = inf` or `nan` is refused with the setting's name
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        """Every number of every section, including ones added later, within the ceiling."""
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and abs(value) > NUMBER_CEILING:
            raise ValueError(f"{value!r} is too large (at most {NUMBER_CEILING:,})")
        return value


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{mask_url(value)!r} is not an http(s) URL")  # may carry a token
    return value.rstrip("/")


def _cron(value: str) -> str:
    from service.cron import cron_trigger  # APScheduler: only when a schedule is set

    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid cron expression ({exc})") from None
    return value


class DatabaseSettings(Section):
    url: str = "sqlite:///var/trialwatch.db"

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError("not a SQLAlchemy URL (e.g. sqlite:///var/trialwatch.db)") from None
        try:
            url.get_dialect()
        except NoSuchModuleError:
            shown = mask_url(url.render_as_string(hide_password=True))
            raise ValueError(f"{shown!r}: no database driver for {url.drivername!r}") from None
        return value


class ClientSettings(Section):
    """How any registry is asked: pace, patience and retries."""

    requests_per_second: float = Field(1.0, gt=0, le=100)
    timeout_seconds: float = Field(30.0, gt=0, le=HOUR)
    # the whole of one request (connect, headers, body), however slowly the server sends it
    deadline_seconds: float = Field(120.0, gt=0, le=HOUR)
    max_attempts: int = Field(5, ge=1, le=20)
    retry_initial_seconds: float = Field(1.0, ge=0, le=HOUR)
    retry_max_seconds: float = Field(120.0, ge=0, le=DAY)
    # a watched id the registry says it never had is reported once, then asked for again
    # only this often (0: every cycle)
    not_found_retry_days: int = Field(7, ge=0, le=366)


class CtgovSettings(ClientSettings):
    api_url: str = API_URL
    history_url: str = HISTORY_URL
    page_size: int = Field(1000, ge=1, le=1000)
    # longest request line sent (filter.ids batches are cut to fit; halved on 414/431)
    max_url_bytes: int = Field(6000, ge=512, le=1_000_000)
    max_response_mib: int = Field(512, ge=1, le=65_536)  # a larger registry answer is refused
    probe: bool = True  # ask for last-update dates first; fetch in full only what moved
    # a cycle may ask the registry what changed since the last one (when that is cheaper
    # than probing every watched id), and costs one request when its data did not move
    incremental: bool = True
    max_query_matches: int = Field(5000, ge=1, le=1_000_000)  # a broader saved search is refused
    full_probe_every: int = Field(7, ge=1, le=10_000)  # cycles; the safety net
    listing_overlap_days: int = Field(2, ge=0, le=365)  # posting delays and time zones
    history: bool = True  # gap filling and backfill from the record-history API
    history_backfill: bool = True  # fetch every past version when a record is first seen
    history_gap_seconds: float = Field(1.0, ge=0, le=HOUR)  # between history requests (it 429s)
    # backfill of new records' past versions: worked at most this long per cycle, the rest
    # left queued for the next cycle (and the daemon between cycles)
    history_budget_seconds: float = Field(30.0, ge=0, le=86_400)
    # the daemon works the backfill queue between cycles this often
    history_backfill_every_seconds: int = Field(60, ge=1, le=DAY)
    notify_backfill: bool = False  # notify changes found by backfill, not only new ones

    _urls = field_validator("api_url", "history_url")(_http_url)


class SourceSettings(ClientSettings):
    """What every registry without a version history of its own (EUCTR, CTIS, ISRCTN) is
    asked with: politeness, retries, the whole-request deadline and the weekly full refetch
    that backs up its change signal."""

    max_response_mib: int = Field(64, ge=1, le=65_536)
    # every record is fetched again at least this often, whatever the change signal says
    full_refetch_days: int = Field(7, ge=1, le=366)

    # What the sync cycle asks of ClinicalTrials.gov's section that these registries do not
    # have: no probe, no data timestamp, no past versions to fill gaps or backfill from.
    probe: ClassVar[bool] = False
    incremental: ClassVar[bool] = False
    history: ClassVar[bool] = False
    history_backfill: ClassVar[bool] = False
    notify_backfill: ClassVar[bool] = False
    history_budget_seconds: ClassVar[float] = 0.0
    max_query_matches: ClassVar[int] = 0


class EuctrSettings(SourceSettings):
    url: str = EUCTR_URL

    _urls = field_validator("url")(_http_url)


class CtisSettings(SourceSettings):
    api_url: str = CTIS_URL
    # rows a page of the change-signal search (the portal's own pages are at most 100)
    page_size: int = Field(100, ge=1, le=100)

    _urls = field_validator("api_url")(_http_url)


class IsrctnSettings(SourceSettings):
    api_url: str = ISRCTN_URL

    _urls = field_validator("api_url")(_http_url)


class ScheduleSettings(Section):
    sync: str = "0 6 * * *"
    sync_every_seconds: int | None = Field(None, ge=1, le=366 * DAY)
    deliver_every_seconds: int = Field(30, ge=1, le=DAY)

    _cron = field_validator("sync")(_cron)


class EmailChannel(Section):
    name: str
    type: Literal["email"]
    smtp_host: str = "localhost"
    smtp_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password_env: str = "TRIALWATCH_SMTP_PASSWORD"
    sender: str = "trialwatch@localhost"
    recipients: list[str] = Field(min_length=1)
    timeout_seconds: float = Field(30.0, gt=0, le=HOUR)
    deadline_seconds: float = Field(120.0, gt=0, le=HOUR)  # the whole SMTP conversation


class WebhookChannel(Section):
    name: str
    type: Literal["webhook"]
    url: str
    secret_env: str = "TRIALWATCH_WEBHOOK_SECRET"
    allow_private_network: bool = False
    timeout_seconds: float = Field(10.0, gt=0, le=HOUR)
    deadline_seconds: float = Field(30.0, gt=0, le=HOUR)  # the whole POST and its answer

    _url = field_validator("url")(_http_url)


class AppriseChannel(Section):
    name: str
    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1)
    # true lets URLs of self-hosted services (json://, ntfy://host/…) name private addresses
    allow_private_network: bool = False
    deadline_seconds: float = Field(120.0, gt=0, le=HOUR)  # notifying every URL of the channel


Channel = Annotated[EmailChannel | WebhookChannel | AppriseChannel, Field(discriminator="type")]


def _only_known(
    values: list[str], known: Collection[str], what: str, *, say_known: bool = True
) -> list[str]:
    """``values`` when each is ``*`` or one of ``known``; else the first unknown, named."""
    unknown = [v for v in values if v != "*" and v not in known]
    if unknown:
        listed = f" (one of {', '.join(known)})" if say_known else ""
        raise ValueError(f"unknown {what} {unknown[0]!r}{listed}")
    return values


class Subscription(Section):
    channel: str
    studies: list[str] = ["*"]
    kinds: list[str] = ["*"]
    findings: list[str] = ["*"]  # for finding_opened/finding_resolved: which rules
    grades: list[str] = ["*"]  # for outcome events: editorial | minor | major
    min_severity: Severity = "low"
    mode: Literal["immediate", "digest"] = "immediate"
    digest_cron: str | None = None

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        return _only_known(kinds, CHANGE_KINDS, "change kind", say_known=False)

    @field_validator("grades")
    @classmethod
    def _known_grades(cls, grades: list[str]) -> list[str]:
        return _only_known(grades, OUTCOME_GRADES, "outcome grade")

    @field_validator("findings")
    @classmethod
    def _known_rules(cls, rules: list[str]) -> list[str]:
        from service.findings.rules import RULE_NAMES

        return _only_known(rules, RULE_NAMES, "finding rule")

    @field_validator("digest_cron")
    @classmethod
    def _digest_cron(cls, value: str | None) -> str | None:
        return None if value is None else _cron(value)

    @model_validator(mode="after")
    def _digest_needs_cron(self) -> Subscription:
        if self.mode == "digest" and not self.digest_cron:
            raise ValueError("mode = 'digest' needs digest_cron")
        return self


class FindingsSettings(Section):
    """Thresholds of the transparency rules (README, "Findings")."""

    enabled: bool = True
    results_years: int = Field(1, ge=0, le=10)  # FDAAA: results within a year of completion
    results_grace_days: int = Field(30, ge=0, le=3650)  # as the FDAAA TrialsTracker allows
    delay_certificate_years: int = Field(3, ge=0, le=10)
    due_soon_days: int = Field(30, ge=0, le=3650)
    shortfall_ratio: float = Field(0.85, ge=0, le=1)
    stale_verified_days: int = Field(730, ge=1, le=36500)
    stale_completion_days: int = Field(365, ge=1, le=36500)
    retrospective_grace_days: int = Field(0, ge=0, le=3650)
    # enrollment_shortfall: the phases it looks at (API v2 values; [] = any phase)
    shortfall_phases: tuple[str, ...] = ("PHASE2", "PHASE3")
    # registrations_disagree: how long one registration may say ended while another still
    # says recruiting or active (the other registry's update often lags by weeks)
    disagree_days: int = Field(60, ge=0, le=3650)

    @field_validator("shortfall_phases")
    @classmethod
    def _known_phases(cls, phases: tuple[str, ...]) -> tuple[str, ...]:
        from service.findings.rules import PHASES

        unknown = [p for p in phases if p not in PHASES]
        if unknown:
            raise ValueError(f"unknown phase {unknown[0]!r} (one of {', '.join(PHASES)})")
        return phases


class DeliverySettings(Section):
    max_attempts: int = Field(8, ge=1, le=100)
    retry_initial_seconds: float = Field(10.0, ge=0, le=DAY)  # then doubling, with jitter
    retry_max_seconds: float = Field(3600.0, ge=0, le=30 * DAY)
    # a claim older than this is taken over (on PostgreSQL, at once when its process died)
    lease_seconds: float = Field(300.0, gt=0, le=DAY)
    batch_size: int = Field(100, ge=1, le=10000)  # notifications claimed per round


class AlertSettings(Section):
    channel: str = ""  # a channel name for operational alerts; "" = log only
    registry_unreachable_cycles: int = Field(3, ge=1, le=10_000)


class DaemonSettings(Section):
    health_port: int = Field(0, ge=0, le=65535)
    health_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for an outside scraper
    log_format: Literal["human", "json"] = "human"


class WebSettings(Section):
    """The web app (``trialwatch serve``, and the daemon when ``port`` is set)."""

    host: str = "127.0.0.1"  # any other address needs token_env
    # None: `serve` listens on 8080 and the daemon serves no web app
    port: int | None = Field(None, ge=1, le=65535)
    token_env: str = ""  # the variable holding the token for non-loopback clients
    # the address links (feeds) are built from; "": http://HOST:PORT as bound
    public_url: str = Field("", pattern=r"^(https?://[^\s/?#]+/?)?$")
    statement_timeout_seconds: float = Field(10.0, gt=0, le=3600)  # each page's reads
    max_connections: int = Field(1000, ge=8, le=100_000)  # open at once; idle ones make room
    header_timeout_seconds: float = Field(10.0, gt=0, le=600)  # to send a request's headers

    @field_validator("token_env")
    @classmethod
    def _variable_name(cls, value: str) -> str:
        if value and not value.replace("_", "a").isalnum():
            raise ValueError(f"{value!r} is not an environment variable name")
        return value


class Settings(Section):
    database: DatabaseSettings = DatabaseSettings()
    ctgov: CtgovSettings = CtgovSettings()
    euctr: EuctrSettings = EuctrSettings()
    ctis: CtisSettings = CtisSettings()
    isrctn: IsrctnSettings = IsrctnSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    channels: list[Channel] = []
    subscriptions: list[Subscription] = []
    delivery: DeliverySettings = DeliverySettings()
    alerts: AlertSettings = AlertSettings()
    daemon: DaemonSettings = DaemonSettings()
    findings: FindingsSettings = FindingsSettings()
    web: WebSettings = WebSettings()

    @model_validator(mode="after")
    def _subscriptions_name_channels(self) -> Settings:
        names = [c.name for c in self.channels]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"channel name {sorted(duplicated)[0]!r} is used twice")
        for sub in self.subscriptions:
            if sub.channel not in names:
                raise ValueError(f"subscription names unknown channel {sub.channel!r}")
        if self.alerts.channel and self.alerts.channel not in names:
            raise ValueError(f"alerts.channel names unknown channel {self.alerts.channel!r}")
        return self


def secret_values(settings: Settings, environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets these settings point at (to mask in logs): never stored in settings."""
    environ = os.environ if environ is None else environ
    names = [c.password_env for c in settings.channels if isinstance(c, EmailChannel)]
    names += [c.secret_env for c in settings.channels if isinstance(c, WebhookChannel)]
    names += [settings.web.token_env] if settings.web.token_env else []
    values = [environ.get(name, "") for name in names]
    from sqlalchemy.engine import make_url

    database = make_url(settings.database.url)
    values.append(database.password or "")
    # a password (or sslkey passphrase, token …) given in the query: ?password=…
    for key, value in database.query.items():
        if is_secret_key(key):
            values.extend([value] if isinstance(value, str) else value)
    return [v for v in values if v]


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults → config file → environment; any problem is one ``ConfigError`` line."""
    environ = os.environ if environ is None else environ
    path = _config_path(config_path, environ)
    data = _read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "defaults"
    from_env: dict[tuple[str, str], str] = {}
    for name, (section, key) in ENVIRONMENT.items():
        if environ.get(name):
            from_env[(section, key)] = name
            data.setdefault(section, {})
            if not isinstance(data[section], dict):
                raise ConfigError(f"setting {section}: must be a table (in {source})")
            data[section][key] = environ[name]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source, from_env)) from None


def _config_path(given: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if given:
        return Path(given)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


CONFIG_MAX_BYTES = 1024 * 1024  # a config file is a few KiB; /dev/zero must not be read on


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = read_bounded(path, CONFIG_MAX_BYTES).decode("utf-8")
        return load_toml(text)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    except UnsafeDocument as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None


def _one_line(exc: ValidationError, source: str, from_env: dict[tuple[str, str], str]) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(part for part in loc if not part.startswith("function"))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    env_name = from_env.get((loc[0], loc[1])) if len(loc) >= 2 else None
    origin = f"from {env_name}" if env_name else f"in {source}"
    return f"setting {where or 'config'}: {message} ({origin})"
