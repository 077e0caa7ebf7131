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
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.cron import cron_trigger
from service.errors import ConfigError
from service.models import CHANGE_KINDS, Severity

DEFAULT_CONFIG_PATH = Path("config/trialwatch.toml")
CONFIG_ENV = "TRIALWATCH_CONFIG"

# environment name -> (section, key)
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "TRIALWATCH_DATABASE_URL": ("database", "url"),
    "TRIALWATCH_CTGOV_API_URL": ("ctgov", "api_url"),
    "TRIALWATCH_CTGOV_HISTORY_URL": ("ctgov", "history_url"),
    "TRIALWATCH_CTGOV_REQUESTS_PER_SECOND": ("ctgov", "requests_per_second"),
    "TRIALWATCH_HEALTH_PORT": ("daemon", "health_port"),
    "TRIALWATCH_HEALTH_HOST": ("daemon", "health_host"),
    "TRIALWATCH_LOG_FORMAT": ("daemon", "log_format"),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def _cron(value: str) -> str:
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
            shown = url.render_as_string(hide_password=True)
            raise ValueError(f"{shown!r}: no database driver for {url.drivername!r}") from None
        return value


class CtgovSettings(Section):
    api_url: str = "https://clinicaltrials.gov/api/v2"
    history_url: str = "https://clinicaltrials.gov/api/int"
    requests_per_second: float = Field(1.0, gt=0, le=100)
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    retry_initial_seconds: float = Field(1.0, ge=0)
    retry_max_seconds: float = Field(120.0, ge=0)
    page_size: int = Field(1000, ge=1, le=1000)
    max_response_mib: int = Field(512, ge=1)  # a larger registry answer is refused
    probe: bool = True  # ask for last-update dates first; fetch in full only what moved
    history: bool = True  # gap filling and backfill from the record-history API
    history_backfill: bool = True  # fetch every past version when a record is first seen
    history_gap_seconds: float = Field(1.0, ge=0)  # between history requests (it 429s)
    notify_backfill: bool = False  # notify changes found by backfill, not only new ones

    _urls = field_validator("api_url", "history_url")(_http_url)


class ScheduleSettings(Section):
    sync: str = "0 6 * * *"
    sync_every_seconds: int | None = Field(None, ge=1)
    deliver_every_seconds: int = Field(30, ge=1)

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
    timeout_seconds: float = Field(30.0, gt=0)


class WebhookChannel(Section):
    name: str
    type: Literal["webhook"]
    url: str
    secret_env: str = "TRIALWATCH_WEBHOOK_SECRET"
    allow_private_network: bool = False
    timeout_seconds: float = Field(10.0, gt=0)

    _url = field_validator("url")(_http_url)


class AppriseChannel(Section):
    name: str
    type: Literal["apprise"]
    urls: list[str] = Field(min_length=1)


Channel = Annotated[EmailChannel | WebhookChannel | AppriseChannel, Field(discriminator="type")]


class Subscription(Section):
    channel: str
    studies: list[str] = ["*"]
    kinds: list[str] = ["*"]
    min_severity: Severity = "low"
    mode: Literal["immediate", "digest"] = "immediate"
    digest_cron: str | None = None

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = [k for k in kinds if k != "*" and k not in CHANGE_KINDS]
        if unknown:
            raise ValueError(f"unknown change kind {unknown[0]!r}")
        return kinds

    @field_validator("digest_cron")
    @classmethod
    def _digest_cron(cls, value: str | None) -> str | None:
        return None if value is None else _cron(value)

    @model_validator(mode="after")
    def _digest_needs_cron(self) -> Subscription:
        if self.mode == "digest" and not self.digest_cron:
            raise ValueError("mode = 'digest' needs digest_cron")
        return self


class DeliverySettings(Section):
    max_attempts: int = Field(8, ge=1, le=100)
    retry_initial_seconds: float = Field(10.0, ge=0)  # then doubling, with jitter
    retry_max_seconds: float = Field(3600.0, ge=0)
    lease_seconds: float = Field(300.0, gt=0)  # a claim older than this is taken over
    batch_size: int = Field(100, ge=1, le=10000)  # notifications claimed per round


class AlertSettings(Section):
    channel: str = ""  # a channel name for operational alerts; "" = log only
    registry_unreachable_cycles: int = Field(3, ge=1)


class DaemonSettings(Section):
    health_port: int = Field(0, ge=0, le=65535)
    health_host: str = "127.0.0.1"  # 0.0.0.0 in a container, for an outside scraper
    log_format: Literal["human", "json"] = "human"


class Settings(Section):
    database: DatabaseSettings = DatabaseSettings()
    ctgov: CtgovSettings = CtgovSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    channels: list[Channel] = []
    subscriptions: list[Subscription] = []
    delivery: DeliverySettings = DeliverySettings()
    alerts: AlertSettings = AlertSettings()
    daemon: DaemonSettings = DaemonSettings()

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
    values = [environ.get(name, "") for name in names]
    from sqlalchemy.engine import make_url

    values.append(make_url(settings.database.url).password or "")
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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
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
