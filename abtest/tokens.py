"""Signed values a reader's browser carries: the visitor cookie and click tokens.

Both are itsdangerous signatures under the service's secret key, with their
own salts so one can never be passed off as the other.  The signing
algorithm is keyed BLAKE2b (:class:`Blake2bMAC`); values signed with
itsdangerous's default HMAC-SHA1 by earlier versions are still accepted.
They sign a compact text payload with ``Signer`` / ``TimestampSigner``
directly rather than going through itsdangerous's JSON serializers: on the
reader path that is 5 to 8 times cheaper (no JSON, no zlib attempt, no base64 of the payload; see
docs/performance.md), and every part of the payload is already URL- and
cookie-safe:

- visitor cookie: ``<visitor id>:<slug>=<variant>:<slug>=<variant>...``
- click token:    ``<slug>:<variant>:<visitor ref>`` plus a timestamp

A click token names its visitor by a hash of their id (:func:`visitor_ref`),
never the id itself, which travels only in the visitor's own HttpOnly cookie.

Visitor ids are URL-safe base64 of 12 random bytes, slugs are lowercase letters,
digits and hyphens, variants are single letters: none contains ``:``, ``=``
or ``.``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from binascii import a2b_base64, b2a_base64
from typing import NamedTuple

from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.signer import SigningAlgorithm

__all__ = [
    "Blake2bMAC",
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
# The id a visitor cookie's value starts with (matched with match).
_COOKIE_VISITOR_ID = re.compile(_ID_TEXT + r"(?=[:.])")
# A click token's payload: <slug>:<variant>:<visitor ref>.
_CLICK_PAYLOAD = re.compile(f"({_SLUG_TEXT}):({_VARIANT_TEXT}):([0-9a-f]{{24}})")
# Before session 9 a click token named the visitor id itself.
_LEGACY_CLICK_PAYLOAD = re.compile(f"({_SLUG_TEXT}):({_VARIANT_TEXT}):{_ID_TEXT}")
# BLAKE2b (CPython's own, keyed by nothing, personalised for this one use):
# a copy of a prepared state costs less than setting up an OpenSSL SHA-256.
_REF_HASH = hashlib.blake2b(digest_size=12, person=b"abtest.visitor")


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _urlsafe(digest: bytes) -> bytes:
    """itsdangerous's ``base64_encode`` of a digest: three C calls, not four Python ones."""
    return b2a_base64(digest, newline=False).translate(_URLSAFE).rstrip(b"=")


class Blake2bMAC(SigningAlgorithm):
    """Keyed BLAKE2b with a 160-bit tag: itsdangerous's signing algorithm here.

    BLAKE2 is a MAC when given a key (RFC 7693; Python's hashlib documents
    it as "a faster and simpler replacement for HMAC"): one hash of the
    value with the key in its state, where HMAC-SHA1 hashes twice and, in
    CPython, costs three OpenSSL contexts per signature.  Its tag is as long
    as HMAC-SHA1's, so cookies and links keep their length.
    """

    digest_size = 20

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hashlib.blake2b(value, key=key, digest_size=self.digest_size).digest()


class _KeyedSigner:
    """itsdangerous signatures with each key derived and keyed once.

    Signs with :class:`Blake2bMAC`.  Overrides the two methods of ``Signer``
    that compute and check a signature; the format, separators, timestamps
    and expiry stay itsdangerous's own.  Stock ``Signer`` re-derives the key
    and sets up a new MAC on every call, which costs more than hashing a
    short value.  A signature is checked by comparing its text in constant
    time with the one computed here: the same as stock for every signature
    itsdangerous makes, and it never accepts another spelling of the same
    bytes.  A signature that is not this algorithm's is checked as
    itsdangerous's default HMAC-SHA1, which signed values before (visitor
    cookies live 30 days).  Tests check values both ways against stock
    itsdangerous.
    """

    def __init__(self, secret_key: str | list[str], salt: str):
        super().__init__(secret_key, salt=salt, algorithm=Blake2bMAC())
        size, newest_first = Blake2bMAC.digest_size, self.secret_keys[::-1]
        # One keyed state per secret key, then the same keys as HMAC-SHA1 (the
        # digest itsdangerous also derives keys with), newest key first: what
        # verify_signature tries, in order.  The first one signs.
        self._checks = [
            hashlib.blake2b(key=self.derive_key(key), digest_size=size) for key in newest_first
        ] + [hmac.new(self.derive_key(key), digestmod=self.digest_method) for key in newest_first]

    def get_signature(self, value: str | bytes) -> bytes:
        mac = self._checks[0].copy()
        mac.update(want_bytes(value))
        return _urlsafe(mac.digest())

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        value, sig = want_bytes(value), want_bytes(sig)
        for keyed in self._checks:
            mac = keyed.copy()
            mac.update(value)
            if hmac.compare_digest(_urlsafe(mac.digest()), sig):
                return True
        return False


class _Signer(_KeyedSigner, Signer):
    pass


class _TimestampSigner(_KeyedSigner, TimestampSigner):
    """itsdangerous's ``TimestampSigner``, with a short way through for the usual cases.

    ``sign`` encodes the timestamp once a second, not once a call.
    ``unsign`` with a ``max_age`` returns a genuine, unexpired value itself;
    anything else (a bad signature, a malformed or expired timestamp) goes
    through itsdangerous's own ``unsign``, which raises its own exceptions.
    """

    def __init__(self, secret_key: str | list[str], salt: str):
        super().__init__(secret_key, salt=salt)
        self._stamp: tuple[int, bytes] = (-1, b"")

    def sign(self, value: str | bytes) -> bytes:
        now = self.get_timestamp()
        second, stamp = self._stamp
        if second != now:
            stamp = base64_encode(int_to_bytes(now))
            self._stamp = (now, stamp)
        value = want_bytes(value) + self.sep + stamp
        return value + self.sep + self.get_signature(value)

    def unsign(self, signed_value, max_age=None, return_timestamp=False):
        if max_age is not None and not return_timestamp:
            signed = want_bytes(signed_value)
            stamped, _, sig = signed.rpartition(self.sep)
            value, _, stamp = stamped.rpartition(self.sep)
            if value and self.verify_signature(stamped, sig):
                try:  # base64_decode's steps, without its four Python calls
                    padded = stamp.translate(_FROM_URLSAFE) + b"=" * (-len(stamp) % 4)
                    signed_at = int.from_bytes(a2b_base64(padded), "big")
                except ValueError:
                    signed_at = None
                if signed_at is not None and 0 <= self.get_timestamp() - signed_at <= max_age:
                    return value
        return super().unsign(signed_value, max_age=max_age, return_timestamp=return_timestamp)


class InvalidToken(ValueError):
    """Malformed or forged: not something this service signed."""


class ExpiredToken(InvalidToken):
    """Genuine, but older than its lifetime."""

    def __init__(self, message: str, token: ClickToken | None):
        super().__init__(message)
        self.token = token


class Visitor(NamedTuple):
    """One browser: its id and the variant it was assigned in each experiment.

    Named tuples, here and for the other values a reader's request makes:
    as immutable as frozen dataclasses, built in a third of the time.
    """

    id: str
    assignments: dict[str, str]

    @classmethod
    def new(cls) -> Visitor:
        # secrets.token_urlsafe(12) (os.urandom's bytes, URL-safe base64), minus four calls.
        return cls(_urlsafe(os.urandom(12)).decode("ascii"), {})


class VisitorCookies:
    """Encodes a :class:`Visitor` into a signed cookie value and back."""

    def __init__(self, secret_key: str):
        self._signer = _Signer(secret_key, salt="abtest.visitor")

    def dumps(self, visitor: Visitor) -> str:
        parts = [visitor.id] + [
            f"{slug}={variant}" for slug, variant in visitor.assignments.items()
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
        for pair in pairs:
            slug, _, variant = pair.partition("=")
            if not (_SLUG.fullmatch(slug) and _VARIANT.fullmatch(variant)):
                return None
            assignments[slug] = variant
        return Visitor(id=visitor_id, assignments=assignments)


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
    """Whether a visitor cookie's value lists ``slug=variant``, its signature unchecked."""
    payload = value.rpartition(".")[0]
    return f":{slug}={variant}:" in payload + ":"


class ClickToken(NamedTuple):
    slug: str
    variant: str
    #: :func:`visitor_ref` of the visitor the link was made for.
    visitor_ref: str


class ClickTokens:
    """Click tokens: which visitor (by ref) was shown which variant of which story, and when."""

    def __init__(self, secret_key: str, max_age: int):
        self._signer = _TimestampSigner(secret_key, salt="abtest.click")
        self.max_age = max_age

    def dumps(self, token: ClickToken) -> str:
        return self.sign(token.slug, token.variant, token.visitor_ref)

    def sign(self, slug: str, variant: str, visitor_ref: str) -> str:
        """``dumps(ClickToken(slug, variant, visitor_ref))``, without building the token."""
        return self._signer.sign(f"{slug}:{variant}:{visitor_ref}").decode("ascii")

    def loads(self, value: str) -> ClickToken:
        """Verify a token; raises :class:`InvalidToken` or :class:`ExpiredToken`."""
        try:
            payload = self._signer.unsign(value, max_age=self.max_age)
        except SignatureExpired as expired:
            found = _parse(expired.payload) or _legacy(expired.payload)
            raise ExpiredToken("this link has expired", found) from None
        except (BadSignature, UnicodeError):
            raise InvalidToken("this link is not valid") from None
        token = _parse(payload)
        if token is None:
            legacy = _legacy(payload)
            if legacy is not None:
                # Genuine, but counted as expired: it names no visitor ref.
                raise ExpiredToken("this link predates visitor refs", legacy)
            raise InvalidToken("this link is not valid")
        return token


def _legacy(payload: bytes | None) -> ClickToken | None:
    """A token made before tokens named a visitor ref (it names the id), with no ref."""
    found = _LEGACY_CLICK_PAYLOAD.fullmatch((payload or b"").decode("ascii", "replace"))
    return None if found is None else ClickToken(*found.groups(), visitor_ref="")


def _parse(payload: bytes | None) -> ClickToken | None:
    try:
        found = _CLICK_PAYLOAD.fullmatch((payload or b"").decode("ascii"))
    except UnicodeError:
        return None
    return None if found is None else ClickToken(*found.groups())
