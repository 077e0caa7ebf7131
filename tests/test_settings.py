"""Settings: defaults, the TOML file, the environment, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trialwatch.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert settings.database.url == "sqlite:///var/trialwatch.db"
    assert settings.ctgov.api_url == "https://clinicaltrials.gov/api/v2"
    assert settings.ctgov.history_url == "https://clinicaltrials.gov/api/int"
    assert settings.ctgov.requests_per_second == 1.0
    assert settings.schedule.sync == "0 6 * * *"
    assert settings.schedule.deliver_every_seconds == 30
    assert settings.daemon.health_port == 0


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[ctgov]\napi_url = "http://file.example/api/v2"\n')
    settings = load_settings(
        environ={
            "TRIALWATCH_CONFIG": str(path),
            "TRIALWATCH_CTGOV_API_URL": "http://127.0.0.1:9/api/v2/",
            "TRIALWATCH_DATABASE_URL": "sqlite:///x.db",
        }
    )
    assert settings.ctgov.api_url == "http://127.0.0.1:9/api/v2"
    assert settings.database.url == "sqlite:///x.db"


def test_the_shipped_config_file_is_valid_and_matches_the_defaults() -> None:
    shipped = Path(__file__).resolve().parents[1] / "config" / "trialwatch.toml"
    assert load_settings(shipped, environ={}) == Settings()


def test_the_default_config_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "trialwatch.toml").write_text("[ctgov]\nrequests_per_second = 2.5\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).ctgov.requests_per_second == 2.5


def test_channels_and_subscriptions_of_the_contract_parse(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[channels]]
name = "team-mail"
type = "email"
smtp_host = "localhost"
smtp_port = 25
starttls = false
username = ""
password_env = "TRIALWATCH_SMTP_PASSWORD"
sender = "trialwatch@example.org"
recipients = ["team@example.org"]

[[channels]]
name = "hook"
type = "webhook"
url = "https://example.org/hooks/trialwatch"
secret_env = "TRIALWATCH_WEBHOOK_SECRET"
allow_private_network = false

[[subscriptions]]
channel = "team-mail"
studies = ["*"]
kinds = ["*"]
min_severity = "low"
mode = "immediate"

[daemon]
health_port = 0
""",
    )
    settings = load_settings(path, environ={})
    assert [c.name for c in settings.channels] == ["team-mail", "hook"]
    assert settings.subscriptions[0].channel == "team-mail"


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('[ctgov]\napi_urll = "http://x"\n', {}, "setting ctgov.api_urll: unknown setting"),
        ('[schedule]\nsync = "61 25 * * *"\n', {}, "setting schedule.sync: '61 25 * * *'"),
        ("[ctgov]\nrequests_per_second = 0\n", {}, "setting ctgov.requests_per_second:"),
        ('[ctgov]\napi_url = "ftp://x"\n', {}, "setting ctgov.api_url: 'ftp://x' is not"),
        ("[ctgov\n", {}, "not valid TOML"),
        ("", {"TRIALWATCH_DATABASE_URL": "notaurl://"}, "setting database.url:"),
        ("", {"TRIALWATCH_CTGOV_REQUESTS_PER_SECOND": "fast"}, "TRIALWATCH_CTGOV_REQUESTS"),
        (
            '[[subscriptions]]\nchannel = "nowhere"\n',
            {},
            "subscription names unknown channel 'nowhere'",
        ),
        (
            '[[channels]]\nname = "m"\ntype = "email"\nrecipients = ["a@b"]\n'
            '[[subscriptions]]\nchannel = "m"\nkinds = ["status_change"]\n',
            {},
            "unknown change kind 'status_change'",
        ),
        ('[[channels]]\nname = "x"\ntype = "pigeon"\n', {}, "setting channels.0:"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=f"config file {missing}: not found"):
        load_settings(environ={"TRIALWATCH_CONFIG": str(missing)})


def test_a_database_password_never_appears_in_the_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"TRIALWATCH_DATABASE_URL": "nosuchdb://user:s3cret@host/db"})
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).resolve().parents[1] / "config" / "examples").glob("*.toml"))
)
def test_every_example_config_is_valid(example: Path) -> None:
    load_settings(example, environ={})


def test_web_settings_default_to_loopback_and_are_checked(tmp_path: Path) -> None:
    web = load_settings(write(tmp_path, ""), environ={}).web
    assert (web.host, web.port, web.token_env) == ("127.0.0.1", None, "")
    environ = {"TRIALWATCH_WEB_PORT": "9090", "TRIALWATCH_WEB_HOST": "::1"}
    web = load_settings(write(tmp_path, ""), environ=environ).web
    assert (web.host, web.port) == ("::1", 9090)
    for text, wrong in (
        ("[web]\nport = 70000\n", "web.port"),
        ("[web]\nport = 0\n", "web.port"),
        ('[web]\ntoken_env = "MY TOKEN"\n', "web.token_env"),
        ('[web]\ntoken = "inline-secret"\n', "web.token"),
    ):
        with pytest.raises(ConfigError, match=wrong):
            load_settings(write(tmp_path, text), environ={})
