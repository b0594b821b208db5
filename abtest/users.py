"""The editors' users file: where it is, reading it, and changing one editor's line.

One editor per line, ``name:hash`` (a werkzeug.security hash, which holds
colons itself, so the name ends at the first one); blank lines and lines
starting with ``#`` are ignored.  The file is ``ABTEST_USERS_FILE``, else
``users`` in the data directory.  The dashboard re-reads it when it changes
(dashboard/auth.py) and ``abtest editors add|remove`` rewrites it, each
change in one atomic rename, so an editor is added or removed without a
restart and no reader of the file ever sees half of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path

from .config import Settings

__all__ = ["DEFAULT_NAME", "InvalidName", "users_file", "parse", "set_editor", "remove_editor"]

log = logging.getLogger(__name__)

#: The users file's name in the data directory when ``ABTEST_USERS_FILE`` is unset.
DEFAULT_NAME = "users"

#: An editor's name: what the sign-in form takes and the file can hold.
_NAME = re.compile(r"[^\s:#][^\s:]{0,63}")


class InvalidName(ValueError):
    """An editor name the users file cannot hold; the message says why."""


def users_file(settings: Settings) -> Path:
    """The users file: ``ABTEST_USERS_FILE``, else ``users`` in the data directory."""
    return settings.users_file or settings.data_dir / DEFAULT_NAME


def check_name(name: str) -> str:
    """``name`` if the users file can hold it, else :class:`InvalidName`."""
    if not _NAME.fullmatch(name):
        raise InvalidName(
            f"an editor's name is 1 to 64 characters without spaces or colons, "
            f"not starting with #, not {name!r}"
        )
    return name


def parse(text: str, source: object = "the users file") -> dict[str, str]:
    """Each editor's name and hash; a malformed line is logged and ignored."""
    users = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = _entry(line)
        if entry is None:
            if line.strip() and not line.strip().startswith("#"):
                log.warning("editors file %s line %d is not user:hash; ignored", source, number)
            continue
        users[entry[0]] = entry[1]
    return users


def _entry(line: str) -> tuple[str, str] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    name, colon, password_hash = stripped.partition(":")
    if not colon or not name.strip() or not password_hash.strip():
        return None
    return name.strip(), password_hash.strip()


def read(path: Path) -> dict[str, str]:
    """The editors in ``path``; none if it doesn't exist."""
    try:
        return parse(path.read_text("utf-8"), path)
    except FileNotFoundError:
        return {}


def set_editor(path: Path, name: str, password_hash: str) -> bool:
    """Give ``name`` this password hash: True if added, False if its line was replaced.

    Every other line (comments included) is kept as it was.
    """
    check_name(name)
    if password_hash.count("$") != 2 or any(c.isspace() for c in password_hash):
        raise ValueError(
            "a password hash looks like method$salt$hash: make one with `abtest hash-password`"
        )
    lines = _lines(path)
    line = f"{name}:{password_hash}"
    found = [i for i, old in enumerate(lines) if (_entry(old) or ("",))[0] == name]
    if found:
        lines[found[0]] = line
        for index in reversed(found[1:]):  # a name listed twice keeps one line
            del lines[index]
    else:
        lines.append(line)
    _write(path, lines)
    return not found


def remove_editor(path: Path, name: str) -> bool:
    """Remove ``name``'s line: True if it was there."""
    lines = _lines(path)
    kept = [line for line in lines if (_entry(line) or ("",))[0] != name]
    if len(kept) == len(lines):
        return False
    _write(path, kept)
    return True


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []


def _write(path: Path, lines: list[str]) -> None:
    """Replace the file in one rename, keeping its permissions (0600 for a new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600  # password hashes: for the service's user only
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
