"""itsdangerous signers with each secret key derived and keyed once, signing with keyed BLAKE2b.

A bypass, kept because every counted reader's request signs a click token and
reads a signed cookie.  Stock ``itsdangerous.Signer`` derives the key again
and sets up a new MAC for every signature, which costs more than hashing the
short values signed here.  :class:`Signer` and :class:`TimestampSigner`
override just the two methods that compute and check a signature
(``get_signature``, ``verify_signature``), using the stock ``derive_key``
once per secret key; the format, separators, salts, key rotation,
timestamps, expiry and exceptions stay itsdangerous's own.
:class:`TimestampSigner` also encodes the timestamp once a second, not once a
call.  tests/test_signing.py holds both to stock itsdangerous signing with
:class:`Blake2bMAC`, both ways.
"""

from __future__ import annotations

import hashlib
import hmac
from binascii import b2a_base64

import itsdangerous
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.signer import SigningAlgorithm

__all__ = ["Blake2bMAC", "Signer", "TimestampSigner", "urlsafe"]

_URLSAFE = bytes.maketrans(b"+/", b"-_")


def urlsafe(digest: bytes) -> bytes:
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


class _KeyedOnce:
    """The signature methods of ``itsdangerous.Signer``, from states keyed once.

    A signature is checked by comparing its text in constant time with the
    one computed here: the same as stock for every signature itsdangerous
    makes, and it never accepts another spelling of the same bytes.
    """

    def __init__(self, secret_key: str | list[str], salt: str):
        super().__init__(secret_key, salt=salt, algorithm=Blake2bMAC())
        # One keyed state per secret key, newest first: the first one signs,
        # and verify_signature tries them in order.
        self._keyed = [
            hashlib.blake2b(key=self.derive_key(key), digest_size=Blake2bMAC.digest_size)
            for key in reversed(self.secret_keys)
        ]

    def get_signature(self, value: str | bytes) -> bytes:
        mac = self._keyed[0].copy()
        mac.update(want_bytes(value))
        return urlsafe(mac.digest())

    def verify_signature(self, value: str | bytes, sig: str | bytes) -> bool:
        value, sig = want_bytes(value), want_bytes(sig)
        for keyed in self._keyed:
            mac = keyed.copy()
            mac.update(value)
            if hmac.compare_digest(urlsafe(mac.digest()), sig):
                return True
        return False


class Signer(_KeyedOnce, itsdangerous.Signer):
    """``itsdangerous.Signer(secret_key, salt, algorithm=Blake2bMAC())``, keyed once."""


class TimestampSigner(_KeyedOnce, itsdangerous.TimestampSigner):
    """``itsdangerous.TimestampSigner(secret_key, salt, algorithm=Blake2bMAC())``, keyed
    once, encoding the timestamp once a second."""

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
