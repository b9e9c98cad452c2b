"""Settings are parsed in one place, and every bad value names its variable."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.settings import Settings, load_env_file, parse_duration


@pytest.mark.parametrize("raw, seconds", [
    ("300", 300), ("300s", 300), ("5m", 300), ("5min", 300), ("5 mins", 300), ("1h", 3600), ("1.5h", 5400),
    ("1d", 86400), ("0.2", 0.2),
])
def test_durations_take_plain_seconds_or_a_clear_unit(raw, seconds):
    assert parse_duration("XERO_POLL_INTERVAL", raw) == pytest.approx(seconds)
    assert Settings.from_env({"XERO_POLL_INTERVAL": raw}).xero_poll_interval == pytest.approx(seconds)


@pytest.mark.parametrize("variable", ["XERO_POLL_INTERVAL", "XERO_BATCH_WINDOW", "ZOHO_ORG_TTL"])
@pytest.mark.parametrize("raw", ["5 minutes please", "-5", "five", "5w", "1e3"])
def test_a_bad_duration_is_a_config_error_naming_the_variable(variable, raw):
    with pytest.raises(ConfigError, match=f"^{variable}: '{raw}' is not a duration"):
        Settings.from_env({variable: raw})


@pytest.mark.parametrize("raw", ["24", "-1", "3am", "3.5"])
def test_a_bad_sweep_hour_is_a_config_error_naming_the_variable(raw):
    with pytest.raises(ConfigError, match=f"^XERO_SWEEP_HOUR: '{raw}' is not an hour of the day"):
        Settings.from_env({"XERO_SWEEP_HOUR": raw})
    assert Settings.from_env({"XERO_SWEEP_HOUR": "23"}).xero_sweep_hour == 23


def test_a_zero_interval_is_refused_but_a_zero_batch_window_is_allowed():
    with pytest.raises(ConfigError, match="^XERO_POLL_INTERVAL:"):
        Settings.from_env({"XERO_POLL_INTERVAL": "0"})
    assert Settings.from_env({"XERO_BATCH_WINDOW": "0"}).xero_batch_window == 0


@pytest.mark.parametrize("variable, value", [
    ("DATABASE_URL", "mysql://connector:hunter2@db/connector"),
    ("DATABASE_URL", "not a url at all"),
    ("REDIS_URL", "http://:hunter2@127.0.0.1:6379"),
    ("REDIS_URL", "redis://:hunter2@127.0.0.1:notaport/0"),
    ("CONNECTOR_PUBLIC_URL", "connector.example.com"),
    ("XERO_API_URL", "ftp://api.xero.com"),
    ("ZOHO_DC", "mars"),
    ("CONNECTOR_EMBEDDED", "perhaps"),
    ("CONNECTOR_ADMIN_TOKEN", "short"),
    ("CONNECTOR_VAULT_KEYS", "k1:hunter2"),
    ("CONNECTOR_VAULT_KEYS", "hunter2"),
    ("DATABASE_URL", "sqlite:////srv/hunter2/connector.db"),
])
def test_bad_values_name_their_variable_and_never_echo_a_password(variable, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value).startswith(f"{variable}: ")
    assert "hunter2" not in str(caught.value)


def test_without_the_embedded_mode_nothing_is_filled_in_and_each_process_names_what_it_misses():
    settings = Settings.from_env({})
    assert settings.database_url == "" and settings.public_url == "" and settings.redis_url is None
    assert settings.missing_for("beat") == ["REDIS_URL", "DATABASE_URL", "CONNECTOR_VAULT_KEYS", "CONNECTOR_PUBLIC_URL"]
    with pytest.raises(ConfigError, match="REDIS_URL, DATABASE_URL, CONNECTOR_VAULT_KEYS .*connector keygen"):
        settings.require("worker")


def test_the_embedded_mode_fills_in_the_stand_ins():
    settings = Settings.from_env({"CONNECTOR_EMBEDDED": "1", "CONNECTOR_DATA_DIR": "var/x"})
    assert settings.database_url == "sqlite:///var/x/connector.db" and settings.embedded
    assert settings.public_url == "http://127.0.0.1:8000"
    settings.require("receiver")  # nothing missing
    sqlite = "sqlite:////srv/connector.db"
    assert Settings.from_env({"CONNECTOR_EMBEDDED": "1", "DATABASE_URL": sqlite}).database_url == sqlite


def test_the_env_file_adds_what_the_environment_does_not_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("# a comment\nexport REDIS_URL=redis://from-file/0\n"
                                   "XERO_SCOPES='offline_access accounting.contacts'  # quoted, with a comment\n"
                                   "DATABASE_URL=postgresql://from-file/db\nCONNECTOR_VAULT_KEYS=\n")
    environ = {"DATABASE_URL": "postgresql://real/db"}
    load_env_file(environ)
    assert environ == {"DATABASE_URL": "postgresql://real/db", "REDIS_URL": "redis://from-file/0",
                       "XERO_SCOPES": "offline_access accounting.contacts", "CONNECTOR_VAULT_KEYS": ""}


def test_the_env_file_is_optional_unless_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    load_env_file(environ)  # no .env here: nothing to read
    assert environ == {}
    with pytest.raises(ConfigError, match="CONNECTOR_ENV_FILE: cannot read prod.env"):
        load_env_file({"CONNECTOR_ENV_FILE": "prod.env"})
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-file/0\n")
    load_env_file(environ := {"CONNECTOR_ENV_FILE": ""})
    assert environ == {"CONNECTOR_ENV_FILE": ""}


def test_the_day_budget_settings():
    from connector.settings import Settings

    defaults = Settings.from_env({})
    assert (defaults.xero_default_day_limit, defaults.xero_scheduled_share) == (1000, 0.10)
    assert defaults.xero_payments_max_delay == 1800 and defaults.xero_check_interval == 7 * 86400
    assert Settings.from_env({"XERO_SCHEDULED_SHARE": "25%"}).xero_scheduled_share == pytest.approx(0.25)
    assert Settings.from_env({"XERO_SCHEDULED_SHARE": "0.05"}).xero_scheduled_share == pytest.approx(0.05)
    assert Settings.from_env({"XERO_PAYMENTS_MAX_DELAY": "1h"}).xero_payments_max_delay == 3600
    for raw in ("0", "150%", "lots"):
        with pytest.raises(ConfigError, match="^XERO_SCHEDULED_SHARE: "):
            Settings.from_env({"XERO_SCHEDULED_SHARE": raw})
