"""Settings from the environment; production refuses default secrets."""

from __future__ import annotations

import pytest

from abtest.config import ConfigError, Settings


def test_defaults_are_development():
    settings = Settings.from_env({})
    assert settings.env == "development" and settings.redis_url is None
    assert settings.visitor_days == 30 and settings.refresh_interval <= 1.0


def test_every_variable_is_read(tmp_path):
    settings = Settings.from_env(
        {
            "ABTEST_ENV": "production",
            "REDIS_URL": "redis://example:6379/2",
            "ABTEST_DATA_DIR": str(tmp_path),
            "ABTEST_SECRET_KEY": "a-long-random-production-secret",
            "ABTEST_API_TOKEN": "token",
            "ABTEST_EDITOR_USER": "ed",
            "ABTEST_EDITOR_PASSWORD_HASH": "hash",
            "ABTEST_USERS_FILE": str(tmp_path / "users"),
            "ABTEST_COOKIE_SECURE": "false",
            "ABTEST_VISITOR_DAYS": "45",
            "ABTEST_CLICK_TOKEN_TTL": "3600",
            "ABTEST_REFRESH_INTERVAL": "0.25",
            "ABTEST_REDIS_TIMEOUT": "1.5",
            "ABTEST_MINUTE_RETENTION": "7200",
            "ABTEST_HOUR_RETENTION": "172800",
            "ABTEST_LOAD_SEED": "no",
            "ABTEST_DASHBOARD_REFRESH": "2.5",
        }
    )
    assert settings.production and settings.redis_url == "redis://example:6379/2"
    assert settings.data_dir == tmp_path and settings.users_file == tmp_path / "users"
    assert (settings.api_token, settings.editor_user, settings.editor_password_hash) == (
        "token",
        "ed",
        "hash",
    )
    assert settings.cookie_secure is False
    assert (settings.visitor_days, settings.click_token_ttl) == (45, 3600)
    assert (settings.refresh_interval, settings.redis_timeout) == (0.25, 1.5)
    assert (settings.minute_retention, settings.hour_retention) == (7200, 172800)
    assert settings.load_seed is False
    assert settings.dashboard_refresh == 2.5


@pytest.mark.parametrize("secret", ["", "secret", "temp", "short", "dev-generated-value-xxxxxxxx"])
def test_production_refuses_a_default_or_weak_secret(secret):
    with pytest.raises(ConfigError, match="ABTEST_SECRET_KEY"):
        Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": secret})


def test_production_cookies_are_secure_by_default():
    settings = Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": "x" * 32})
    assert settings.cookie_secure is True


@pytest.mark.parametrize(
    "name, value",
    [
        ("ABTEST_ENV", "staging"),
        ("ABTEST_VISITOR_DAYS", "many"),
        ("ABTEST_REFRESH_INTERVAL", "5"),
        ("ABTEST_COOKIE_SECURE", "maybe"),
        ("ABTEST_CLICK_TOKEN_TTL", "-1"),
    ],
)
def test_malformed_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_development_secrets_are_generated_once_and_kept(tmp_path):
    first = Settings.from_env({"ABTEST_DATA_DIR": str(tmp_path)}).with_dev_secrets()
    second = Settings.from_env({"ABTEST_DATA_DIR": str(tmp_path)}).with_dev_secrets()
    assert first.secret_key == second.secret_key and len(first.secret_key) > 32
    assert first.api_token == second.api_token
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
