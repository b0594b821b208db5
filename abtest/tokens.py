"""Signed values a reader's browser carries: the visitor cookie and click tokens.

Both are itsdangerous signatures (:mod:`abtest.signing`) under the service's
secret key, with their own salts so one can never be passed off as the other.
They sign a compact text payload with a ``Signer`` / ``TimestampSigner``
directly rather than through itsdangerous's JSON serializers: no JSON, no
zlib attempt, no base64 of the payload, and every part of the payload is
already URL- and cookie-safe:

- visitor cookie: ``<visitor id>:<slug>=<variant>:<slug>=<variant>...``, the
  variant in capitals once the visitor's impression of that story was seen
  (so a returning visitor's is never reported seen twice)
- click token:    ``<slug>:<variant>:<visitor ref>`` plus a timestamp

A click token names its visitor by a hash of their id (:func:`visitor_ref`),
never the id itself, which travels only in the visitor's own HttpOnly cookie.

Visitor ids are URL-safe base64 of 12 random bytes, slugs are lowercase letters,
digits and hyphens, variants are single letters: none contains ``:``, ``=``
or ``.``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from itsdangerous import BadSignature, SignatureExpired

from .signing import Signer, TimestampSigner, urlsafe

__all__ = [
    "Visitor",
    "VisitorCookies",
    "ClickToken",
    "ClickTokens",
    "InvalidToken",
    "ExpiredToken",
    "visitor_ref",
    "cookie_visitor_id",
    "cookie_records",
]

# The parts of the payloads, each written once (matched with fullmatch).
_ID_TEXT, _SLUG_TEXT, _VARIANT_TEXT = r"[A-Za-z0-9_-]{1,64}", r"[a-z0-9-]{1,64}", r"[a-z]"
_VISITOR_ID = re.compile(_ID_TEXT)
_SLUG = re.compile(_SLUG_TEXT)
_VARIANT = re.compile(_VARIANT_TEXT)
# A variant as the cookie writes it: in capitals once seen.
_COOKIE_VARIANT = re.compile(r"[a-zA-Z]")
# The id a visitor cookie's value starts with (matched with match).
_COOKIE_VISITOR_ID = re.compile(_ID_TEXT + r"(?=[:.])")
# A click token's payload: <slug>:<variant>:<visitor ref>.
_CLICK_PAYLOAD = re.compile(f"({_SLUG_TEXT}):({_VARIANT_TEXT}):([0-9a-f]{{24}})")
# BLAKE2b (CPython's own, keyed by nothing, personalised for this one use):
# a copy of a prepared state costs less than setting up an OpenSSL SHA-256.
_REF_HASH = hashlib.blake2b(digest_size=12, person=b"abtest.visitor")


class InvalidToken(ValueError):
    """Malformed or forged: not something this service signed."""


class ExpiredToken(InvalidToken):
    """Genuine, but older than its lifetime."""

    def __init__(self, message: str, token: ClickToken | None):
        super().__init__(message)
        self.token = token


_NONE_SEEN: frozenset[str] = frozenset()


class _VisitorFields(NamedTuple):
    id: str
    assignments: Mapping[str, str]
    seen: frozenset[str]


class Visitor(_VisitorFields):
    """One browser: its id, the variant it was assigned in each experiment, and
    the experiments whose impression was counted as seen.

    Immutable: ``assignments`` is a read-only mapping, in the order the
    assignments were made; :meth:`with_assignments` and :meth:`with_seen` make
    a new visitor.
    """

    __slots__ = ()

    def __new__(
        cls,
        id: str,
        assignments: Mapping[str, str] | Iterable = (),
        seen: Iterable[str] = (),
    ) -> Visitor:
        assignments = dict(assignments)
        return _visitor(id, assignments, frozenset(seen).intersection(assignments))

    @classmethod
    def new(cls) -> Visitor:
        # secrets.token_urlsafe(12) (os.urandom's bytes, URL-safe base64), minus four calls.
        return _visitor(urlsafe(os.urandom(12)).decode("ascii"), {})

    def with_assignments(self, more: Mapping[str, str]) -> Visitor:
        """This visitor with ``more`` assignments added (the newest last)."""
        return _visitor(self.id, {**self.assignments, **more}, self.seen)

    def with_seen(self, slugs: Iterable[str]) -> Visitor:
        """This visitor with its impressions of ``slugs`` (of its assignments) seen."""
        return _visitor(self.id, dict(self.assignments), self.seen.union(slugs))


def _visitor(
    visitor_id: str, assignments: dict[str, str], seen: frozenset[str] = _NONE_SEEN
) -> Visitor:
    """A visitor over ``assignments``, a dict no one else holds (so no copy is made)."""
    return tuple.__new__(Visitor, (visitor_id, MappingProxyType(assignments), seen))


class VisitorCookies:
    """Encodes a :class:`Visitor` into a signed cookie value and back."""

    def __init__(self, secret_key: str):
        self._signer = Signer(secret_key, salt="abtest.visitor")

    def dumps(self, visitor: Visitor) -> str:
        seen = visitor.seen
        parts = [visitor.id] + [
            f"{slug}={variant.upper() if seen and slug in seen else variant}"
            for slug, variant in visitor.assignments.items()
        ]
        return self._signer.sign(":".join(parts)).decode("ascii")

    def loads(self, value: str | None) -> Visitor | None:
        """The visitor, or None for a missing, forged or malformed cookie."""
        if not value:
            return None
        try:
            payload = self._signer.unsign(value).decode("ascii")
        except (BadSignature, UnicodeError):
            return None
        visitor_id, *pairs = payload.split(":")
        if not _VISITOR_ID.fullmatch(visitor_id):
            return None
        assignments = {}
        seen = []
        for pair in pairs:
            slug, _, variant = pair.partition("=")
            if not (_SLUG.fullmatch(slug) and _COOKIE_VARIANT.fullmatch(variant)):
                return None
            if variant.isupper():
                variant = variant.lower()
                seen.append(slug)
            assignments[slug] = variant
        return _visitor(visitor_id, assignments, frozenset(seen) if seen else _NONE_SEEN)


def visitor_ref(visitor_id: str) -> str:
    """What a click token says of its visitor: a 96-bit BLAKE2b hash of their id, in hex.

    A click comes from the browser its link was made for when the visitor id
    in that browser's cookie hashes to the token's ref.  The id is 96 random
    bits that only the reader's HttpOnly cookie carries, so no one else can
    present one that matches; so a click needs the cookie's id, not a check of
    its signature, and a link copied out of a page (a share, a log, a Referer)
    neither names its reader nor counts for anyone else.
    """
    ref = _REF_HASH.copy()
    ref.update(visitor_id.encode("ascii"))
    return ref.hexdigest()


def cookie_visitor_id(value: str | None) -> str | None:
    """The visitor id a visitor cookie's value starts with, its signature unchecked."""
    if not value:
        return None
    found = _COOKIE_VISITOR_ID.match(value)
    return found.group() if found else None


def cookie_records(value: str, slug: str, variant: str) -> bool:
    """Whether a visitor cookie's value lists ``slug=variant`` (seen or not), its
    signature unchecked."""
    payload = value.rpartition(".")[0] + ":"
    return f":{slug}={variant}:" in payload or f":{slug}={variant.upper()}:" in payload


class ClickToken(NamedTuple):
    slug: str
    variant: str
    #: :func:`visitor_ref` of the visitor the link was made for.
    visitor_ref: str


class ClickTokens:
    """Click tokens: which visitor (by ref) was shown which variant of which story, and when."""

    def __init__(self, secret_key: str, max_age: int):
        self._signer = TimestampSigner(secret_key, salt="abtest.click")
        self.max_age = max_age

    def dumps(self, token: ClickToken) -> str:
        return self.sign(token.slug, token.variant, token.visitor_ref)

    def sign(self, slug: str, variant: str, visitor_ref: str) -> str:
        """``dumps(ClickToken(slug, variant, visitor_ref))``, without building the token."""
        return self._signer.sign(f"{slug}:{variant}:{visitor_ref}").decode("ascii")

    def loads(self, value: str, max_age: int | None = None) -> ClickToken:
        """Verify a token no older than ``max_age`` seconds (default: :attr:`max_age`);
        raises :class:`InvalidToken` or :class:`ExpiredToken`."""
        try:
            payload = self._signer.unsign(
                value, max_age=self.max_age if max_age is None else max_age
            )
        except SignatureExpired as expired:
            raise ExpiredToken("this link has expired", _parse(expired.payload)) from None
        except (BadSignature, UnicodeError):
            raise InvalidToken("this link is not valid") from None
        token = _parse(payload)
        if token is None:
            raise InvalidToken("this link is not valid")
        return token


def _parse(payload: bytes | None) -> ClickToken | None:
    try:
        found = _CLICK_PAYLOAD.fullmatch((payload or b"").decode("ascii"))
    except UnicodeError:
        return None
    return None if found is None else ClickToken(*found.groups())
