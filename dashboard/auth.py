"""Editors and their passwords: werkzeug.security hashes, never plain text.

Editors come from ``ABTEST_EDITOR_USER`` / ``ABTEST_EDITOR_PASSWORD_HASH``
and the users file (:mod:`abtest.users`): ``ABTEST_USERS_FILE``, else
``users`` in the data directory, which ``abtest editors add`` writes.  The
file is re-read when it changes, so adding or removing an editor needs no
restart, and a removed editor's open sessions stop working at their next
request.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.security import check_password_hash, generate_password_hash

from abtest import users
from abtest.config import Settings

__all__ = ["Editors", "safe_next"]

log = logging.getLogger(__name__)


class Editors:
    """Who may sign in to the dashboard."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._file_state: tuple[int, int] | None = None
        self._file_users: dict[str, str] = {}
        self._dummy_hash: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self._users())

    def _users(self) -> dict[str, str]:
        found = dict(self._read_file())
        settings = self._settings
        if settings.editor_user and settings.editor_password_hash:
            found[settings.editor_user] = settings.editor_password_hash
        return found

    def _read_file(self) -> dict[str, str]:
        path: Path = users.users_file(self._settings)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            if self._settings.users_file is not None:  # named, so expected
                log.warning("editors file %s does not exist", path)
            return {}
        except OSError as error:
            log.warning("editors file %s unreadable: %s", path, error)
            return {}
        # The inode too: `abtest editors` replaces the file by a rename, which
        # may keep its size and land within the same mtime tick.
        state = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if state != self._file_state:
                self._file_users = _parse_users(path)
                self._file_state = state
            return self._file_users

    def exists(self, username: str) -> bool:
        return username in self._users()

    def check(self, username: str, password: str) -> bool:
        """True only for a configured editor with the right password."""
        stored = self._users().get(username)
        if stored is None:
            # Same work as a real check, so response time doesn't reveal names.
            check_password_hash(self._dummy(), password)
            return False
        try:
            return check_password_hash(stored, password)
        except (ValueError, TypeError):
            log.error(
                "editor %r has a malformed password hash; see `abtest hash-password`", username
            )
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = generate_password_hash(secrets.token_urlsafe(16))
        return self._dummy_hash


def _parse_users(path: Path) -> dict[str, str]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        log.warning("editors file %s unreadable: %s", path, error)
        return {}
    return users.parse(text, path)


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``.

    Refuses absolute URLs, scheme-relative ``//host`` and the backslash
    variants browsers treat the same way, so sign-in can't be turned into an
    open redirect.
    """
    if not target or not isinstance(target, str):
        return default
    if any(ord(ch) < 32 or ch == "\\" for ch in target):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
