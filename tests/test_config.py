"""Settings from the environment; production refuses default secrets."""

from __future__ import annotations

import secrets

import pytest

from abtest.config import ConfigError, Settings


def test_defaults_are_development():
    settings = Settings.from_env({})
    assert settings.env == "development" and settings.redis_url is None
    assert settings.visitor_days == 30 and settings.refresh_interval <= 1.0


STRONG = secrets.token_urlsafe(32)
STRONG_TOKEN = secrets.token_urlsafe(32)


def test_every_variable_is_read(tmp_path):
    settings = Settings.from_env(
        {
            "ABTEST_ENV": "production",
            "REDIS_URL": "redis://example:6379/2",
            "ABTEST_DATA_DIR": str(tmp_path),
            "ABTEST_SECRET_KEY": STRONG,
            "ABTEST_API_TOKEN": STRONG_TOKEN,
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
            "ABTEST_PROXY_HOPS": "2",
            "ABTEST_PUBLIC_URL": "https://news.example.com/",
            "ABTEST_BUDGET_WINDOW": "600",
            "ABTEST_BUDGET_IMPRESSIONS": "40",
            "ABTEST_BUDGET_CLICKS": "0",
            "ABTEST_BREAKER_BACKOFF": "2.5",
            "ABTEST_ACCESS_LOG": "on",
            "ABTEST_METRICS_TOKEN": STRONG_TOKEN[::-1],
            "ABTEST_SESSION_IDLE": "900",
            "ABTEST_MAX_BODY": "65536",
            "ABTEST_WEBHOOK_URL": "https://hooks.example.com/services/T0/B0/x",
            "ABTEST_QUALITY_SECONDS": "20",
        }
    )
    assert settings.quality_seconds == 20.0
    assert settings.production and settings.redis_url == "redis://example:6379/2"
    assert settings.data_dir == tmp_path and settings.users_file == tmp_path / "users"
    assert (settings.api_token, settings.editor_user, settings.editor_password_hash) == (
        STRONG_TOKEN,
        "ed",
        "hash",
    )
    assert settings.cookie_secure is False
    assert (settings.visitor_days, settings.click_token_ttl) == (45, 3600)
    assert (settings.refresh_interval, settings.redis_timeout) == (0.25, 1.5)
    assert (settings.minute_retention, settings.hour_retention) == (7200, 172800)
    assert settings.load_seed is False
    assert settings.dashboard_refresh == 2.5
    assert (settings.proxy_hops, settings.public_url) == (2, "https://news.example.com")
    assert (settings.budget_window, settings.budget_impressions, settings.budget_clicks) == (
        600,
        40,
        0,
    )
    assert (settings.breaker_backoff, settings.access_log) == (2.5, True)
    assert settings.metrics_token == STRONG_TOKEN[::-1]
    assert (settings.session_idle, settings.max_body) == (900, 65536)
    assert settings.webhook_url == "https://hooks.example.com/services/T0/B0/x"


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "secret",
        "temp",
        "short",
        "dev-generated-value-xxxxxxxx",
        "a" * 64,
        "abcdefgh" * 8,
        "a-long-random-production-secret",  # 31 characters: far under 256 bits
        "0123456789abcdef" * 2,  # 32 hex digits are 16 bytes, not 32
    ],
)
def test_production_refuses_a_default_or_weak_secret(secret):
    with pytest.raises(ConfigError, match="ABTEST_SECRET_KEY"):
        Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": secret})


@pytest.mark.parametrize("secret", [secrets.token_hex(32), secrets.token_urlsafe(32)])
def test_production_accepts_32_random_bytes(secret):
    assert Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": secret}).production


@pytest.mark.parametrize("name", ["ABTEST_API_TOKEN", "ABTEST_METRICS_TOKEN"])
@pytest.mark.parametrize("token", ["x", "x" * 40, "short-token-0123456789"])
def test_production_refuses_short_or_repetitive_tokens(name, token):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": STRONG, name: token})


def test_development_accepts_any_token():
    assert Settings.from_env({"ABTEST_API_TOKEN": "x"}).api_token == "x"


@pytest.mark.parametrize(
    "url", ["news.example.com", "ftp://news.example", "https://", "https://a/?q=1"]
)
def test_a_malformed_public_url_is_refused(url):
    with pytest.raises(ConfigError, match="ABTEST_PUBLIC_URL"):
        Settings.from_env({"ABTEST_PUBLIC_URL": url})


def test_production_cookies_are_secure_by_default():
    settings = Settings.from_env({"ABTEST_ENV": "production", "ABTEST_SECRET_KEY": STRONG})
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
