"""Settings, read from the environment once.

Every setting the service understands is a field of :class:`Settings`; the
README's settings table is generated from the same names.  Nothing here
connects to anything.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "ConfigError",
    "Settings",
    "default_data_dir",
    "DEV_SECRET_PREFIX",
    "random_looking",
    "MIN_TOKEN_LENGTH",
]

# Secrets generated for a development data directory start with this, so a
# production start can tell them from a secret an operator chose.
DEV_SECRET_PREFIX = "dev-"

_WEAK_SECRETS = {"", "secret", "changeme", "change-me", "dev", "development", "temp", "test"}


#: A production secret key must carry at least this much entropy, as
#: :func:`random_looking` estimates it (32 random bytes).
MIN_SECRET_BITS = 256
#: A production API or metrics token must be at least this long.
MIN_TOKEN_LENGTH = 32
_GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
_HEX = set("0123456789abcdefABCDEF")
_URLSAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/")


def random_looking(value: str, min_bits: float) -> bool:
    """Whether ``value`` looks like a random secret of at least ``min_bits``.

    An estimate, not a proof: each character is worth 4 bits if the value is
    all hexadecimal, 6 if it is all base64, else 6.5, so ``secrets.token_hex(32)``
    and ``secrets.token_urlsafe(32)`` pass at 256 bits; and a value made of
    few distinct characters (``aaaa...``, ``abab...``) or one character
    filling a quarter of it is refused whatever its length.
    """
    if not value:
        return False
    chars = set(value)
    if len(chars) < min(12, len(value)) or max(map(value.count, chars)) > len(value) / 4:
        return False
    per_char = 4.0 if chars <= _HEX else 6.0 if chars <= _URLSAFE else 6.5
    return len(value) * per_char >= min_bits


def _public_url(value: str) -> str:
    """``ABTEST_PUBLIC_URL`` checked: ``http(s)://host[:port][/path]``, no trailing slash."""
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"ABTEST_PUBLIC_URL must be like https://news.example.com, not {value!r}")
    return value.strip().rstrip("/")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def default_data_dir() -> Path:
    """Where the embedded Redis keeps its data when ABTEST_DATA_DIR is unset."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "abtest"


def _flag(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def _number(value: str, name: str, cast: type = float, minimum: float = 0) -> float:
    try:
        number = cast(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class Settings:
    """The service's configuration; build it with :meth:`from_env`.

    Durations are in seconds unless the name says otherwise.
    """

    #: ``ABTEST_ENV``: ``development`` or ``production``.  Production refuses
    #: to start with a default, generated or weak secret key.
    env: str = "development"
    #: ``REDIS_URL``: ``redis://host:port/db`` or ``unix:///path.sock``; a Redis
    #: Cluster as ``redis+cluster://host:port,host:port,...``; a Sentinel-watched
    #: primary as ``redis+sentinel://host:port,.../service`` (:mod:`abtest.redis_urls`).
    #: Unset: ``abtest serve`` starts its embedded Redis server.
    redis_url: str | None = None
    #: ``ABTEST_DATA_DIR``: the embedded Redis's data (RDB + append-only file)
    #: and the generated development secrets.
    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    #: ``ABTEST_SECRET_KEY``: signs visitor cookies, click tokens and editor
    #: sessions.  Unset in development: generated once into the data dir.
    secret_key: str = ""
    #: ``ABTEST_API_TOKEN``: Bearer token for the stats API.  Unset: only
    #: signed-in editors can read stats.
    api_token: str | None = None
    #: ``ABTEST_EDITOR_USER`` / ``ABTEST_EDITOR_PASSWORD_HASH``: one editor's
    #: sign-in (a werkzeug.security hash, see ``abtest hash-password``).
    editor_user: str | None = None
    editor_password_hash: str | None = None
    #: ``ABTEST_USERS_FILE``: more editors, one ``user:hash`` per line.
    users_file: Path | None = None
    #: ``ABTEST_COOKIE_SECURE``: mark cookies Secure (serve over HTTPS).
    #: Defaults to true in production.
    cookie_secure: bool = False
    #: ``ABTEST_VISITOR_DAYS``: how long a visitor keeps their headline (days).
    visitor_days: int = 30
    #: ``ABTEST_CLICK_TOKEN_TTL``: a click token's lifetime; click
    #: de-duplication records expire with it, which bounds their memory.
    click_token_ttl: int = 86_400
    #: ``ABTEST_REFRESH_INTERVAL``: how often each worker re-reads experiment
    #: counts and status from Redis in the background (at most 1 s).
    refresh_interval: float = 0.5
    #: ``ABTEST_REDIS_TIMEOUT``: socket timeout for Redis calls; a reader page
    #: is served uncounted rather than wait longer.
    redis_timeout: float = 0.5
    #: ``ABTEST_MINUTE_RETENTION``: how long per-minute counts are kept.
    minute_retention: int = 2 * 86_400
    #: ``ABTEST_HOUR_RETENTION``: how long per-hour counts are kept.
    hour_retention: int = 90 * 86_400
    #: ``ABTEST_DASHBOARD_REFRESH``: how often an open dashboard page fetches
    #: fresh numbers (a page's ``?every=`` overrides it).
    dashboard_refresh: float = 5.0
    #: ``ABTEST_LOAD_SEED``: load the bundled seed story on start.
    load_seed: bool = True
    #: ``ABTEST_PROXY_HOPS``: how many trusted reverse proxies (each appending
    #: to ``X-Forwarded-For``) stand between readers and the service; 0 trusts
    #: no forwarded header and takes the socket's address.
    proxy_hops: int = 0
    #: ``ABTEST_PUBLIC_URL``: the site's public base URL (``https://news.example``),
    #: the only source of absolute URLs; unset: links are root-relative paths,
    #: never built from the request's ``Host``.
    public_url: str | None = None
    #: ``ABTEST_BUDGET_WINDOW``: the window of the per-client counting budgets.
    budget_window: int = 3600
    #: ``ABTEST_BUDGET_IMPRESSIONS``: impressions counted per client address per
    #: experiment per window; past it readers are served uncounted and the
    #: excess is counted as excluded ("rate-limited").  0: no budget.
    budget_impressions: int = 100
    #: ``ABTEST_BUDGET_CLICKS``: the same for clicks.
    budget_clicks: int = 25
    #: ``ABTEST_BREAKER_BACKOFF``: after a Redis call times out or fails, how
    #: long readers are served uncounted at once before counting is tried again.
    breaker_backoff: float = 1.0
    #: ``ABTEST_ACCESS_LOG``: log one line per request (the server's access log,
    #: granian's or gunicorn's, on stdout).
    access_log: bool = False
    #: ``ABTEST_METRICS_TOKEN``: Bearer token for ``/metrics``; unset: the API
    #: token opens it.
    metrics_token: str | None = None
    #: ``ABTEST_SESSION_IDLE``: an editor's session ends after this long without
    #: a request from it.
    session_idle: int = 4 * 3600
    #: ``ABTEST_MAX_BODY``: the largest request body accepted (bytes); larger
    #: ones get 413 without being read.
    max_body: int = 1_000_000
    #: ``ABTEST_WEBHOOK_URL``: the newsroom's webhook, sent a Slack-compatible
    #: JSON POST for every story's events (safe to stop, proven winner) and when
    #: Redis lost data (:mod:`abtest.webhooks`); https only in production, except
    #: to localhost.  Unset: only the stories' own webhooks are sent.
    webhook_url: str | None = None
    #: ``ABTEST_QUALITY_SECONDS``: the engaged time on the story page (visible
    #: tab, a reader active in the last few seconds) that makes a click a
    #: quality click.
    quality_seconds: float = 15.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        """Read every ``ABTEST_*`` variable (and ``REDIS_URL``) once."""
        env = os.environ if environ is None else environ
        values: dict = {}
        mode = env.get("ABTEST_ENV", "development").strip().lower()
        if mode not in {"development", "production"}:
            raise ConfigError(f"ABTEST_ENV must be development or production, not {mode!r}")
        values["env"] = mode
        values["redis_url"] = env.get("REDIS_URL") or None
        if env.get("ABTEST_DATA_DIR"):
            values["data_dir"] = Path(env["ABTEST_DATA_DIR"]).expanduser()
        values["secret_key"] = env.get("ABTEST_SECRET_KEY", "")
        values["api_token"] = env.get("ABTEST_API_TOKEN") or None
        values["editor_user"] = env.get("ABTEST_EDITOR_USER") or None
        values["editor_password_hash"] = env.get("ABTEST_EDITOR_PASSWORD_HASH") or None
        if env.get("ABTEST_USERS_FILE"):
            values["users_file"] = Path(env["ABTEST_USERS_FILE"]).expanduser()
        secure = env.get("ABTEST_COOKIE_SECURE")
        values["cookie_secure"] = (
            _flag(secure, "ABTEST_COOKIE_SECURE") if secure is not None else mode == "production"
        )
        numbers = {
            "visitor_days": ("ABTEST_VISITOR_DAYS", int, 1),
            "click_token_ttl": ("ABTEST_CLICK_TOKEN_TTL", int, 60),
            "refresh_interval": ("ABTEST_REFRESH_INTERVAL", float, 0.05),
            "redis_timeout": ("ABTEST_REDIS_TIMEOUT", float, 0.01),
            "minute_retention": ("ABTEST_MINUTE_RETENTION", int, 3600),
            "hour_retention": ("ABTEST_HOUR_RETENTION", int, 86_400),
            "dashboard_refresh": ("ABTEST_DASHBOARD_REFRESH", float, 0.5),
            "proxy_hops": ("ABTEST_PROXY_HOPS", int, 0),
            "budget_window": ("ABTEST_BUDGET_WINDOW", int, 60),
            "budget_impressions": ("ABTEST_BUDGET_IMPRESSIONS", int, 0),
            "budget_clicks": ("ABTEST_BUDGET_CLICKS", int, 0),
            "breaker_backoff": ("ABTEST_BREAKER_BACKOFF", float, 0.05),
            "session_idle": ("ABTEST_SESSION_IDLE", int, 60),
            "max_body": ("ABTEST_MAX_BODY", int, 1024),
            "quality_seconds": ("ABTEST_QUALITY_SECONDS", float, 1.0),
        }
        for field, (name, cast, minimum) in numbers.items():
            if env.get(name):
                values[field] = _number(env[name], name, cast, minimum)
        if env.get("ABTEST_LOAD_SEED"):
            values["load_seed"] = _flag(env["ABTEST_LOAD_SEED"], "ABTEST_LOAD_SEED")
        if env.get("ABTEST_ACCESS_LOG"):
            values["access_log"] = _flag(env["ABTEST_ACCESS_LOG"], "ABTEST_ACCESS_LOG")
        values["metrics_token"] = env.get("ABTEST_METRICS_TOKEN") or None
        values["webhook_url"] = (env.get("ABTEST_WEBHOOK_URL") or "").strip() or None
        if env.get("ABTEST_PUBLIC_URL"):
            values["public_url"] = _public_url(env["ABTEST_PUBLIC_URL"])
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`ConfigError` for settings the service must not run with."""
        if self.refresh_interval > 1.0:
            raise ConfigError("ABTEST_REFRESH_INTERVAL must be at most 1 second")
        if self.redis_url is not None:
            from .redis_urls import InvalidRedisURL, parse

            try:
                parse(self.redis_url)
            except InvalidRedisURL as problem:
                raise ConfigError(f"REDIS_URL: {problem}") from None
        if self.webhook_url is not None:
            from .webhooks import InvalidWebhook, check_url

            try:
                check_url(self.webhook_url, production=self.production)
            except InvalidWebhook as problem:
                raise ConfigError(f"ABTEST_WEBHOOK_URL: {problem}") from None
        if self.production:
            if (
                self.secret_key.strip().lower() in _WEAK_SECRETS
                or self.secret_key.startswith(DEV_SECRET_PREFIX)
                or not random_looking(self.secret_key, MIN_SECRET_BITS)
            ):
                raise ConfigError(
                    "ABTEST_SECRET_KEY must be at least 32 random bytes in production "
                    f"(e.g. {_GENERATE}); a short, repetitive or default one is refused"
                )
            for name, token in (
                ("ABTEST_API_TOKEN", self.api_token),
                ("ABTEST_METRICS_TOKEN", self.metrics_token),
            ):
                if token is not None and (
                    len(token) < MIN_TOKEN_LENGTH or not random_looking(token, 0)
                ):
                    raise ConfigError(
                        f"{name} must be at least {MIN_TOKEN_LENGTH} random characters "
                        f"in production (e.g. {_GENERATE})"
                    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_dev_secrets(self) -> Settings:
        """Fill an unset secret key (and API token) from the data dir, generating them once.

        Development only: every worker and every restart then signs with the
        same key, so visitors keep their headlines.  Production must set them.
        """
        if self.secret_key or self.production:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = _read_or_create(self.data_dir / "secret_key", DEV_SECRET_PREFIX)
        token = self.api_token or _read_or_create(self.data_dir / "api_token", "")
        return dataclasses.replace(self, secret_key=key, api_token=token)


def _read_or_create(path: Path, prefix: str) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process (or an earlier run) made it first: everyone uses that.
        return path.read_text().strip()
    value = prefix + secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
