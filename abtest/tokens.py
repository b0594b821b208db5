"""Signed values a reader's browser carries: the visitor cookie and click tokens.

Both are itsdangerous signatures under the service's secret key, with their
own salts so one can never be passed off as the other.
"""

from __future__ import annotations

import dataclasses
import secrets

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

__all__ = ["Visitor", "VisitorCookies", "ClickToken", "ClickTokens", "InvalidToken", "ExpiredToken"]


class InvalidToken(ValueError):
    """Malformed or forged: not something this service signed."""


class ExpiredToken(InvalidToken):
    """Genuine, but older than its lifetime."""

    def __init__(self, message: str, token: ClickToken | None):
        super().__init__(message)
        self.token = token


@dataclasses.dataclass(frozen=True)
class Visitor:
    """One browser: its id and the variant it was assigned in each experiment."""

    id: str
    assignments: dict[str, str]

    @classmethod
    def new(cls) -> Visitor:
        return cls(id=secrets.token_urlsafe(12), assignments={})


class VisitorCookies:
    """Encodes a :class:`Visitor` into a signed cookie value and back."""

    def __init__(self, secret_key: str):
        self._serializer = URLSafeSerializer(secret_key, salt="abtest.visitor")

    def dumps(self, visitor: Visitor) -> str:
        return self._serializer.dumps([visitor.id, visitor.assignments])

    def loads(self, value: str | None) -> Visitor | None:
        """The visitor, or None for a missing, forged or malformed cookie."""
        if not value:
            return None
        try:
            visitor_id, assignments = self._serializer.loads(value)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(visitor_id, str) or not isinstance(assignments, dict):
            return None
        return Visitor(id=visitor_id, assignments=assignments)


@dataclasses.dataclass(frozen=True)
class ClickToken:
    slug: str
    variant: str
    visitor: str


class ClickTokens:
    """Click tokens: which visitor was shown which variant of which experiment, and when."""

    def __init__(self, secret_key: str, max_age: int):
        self._serializer = URLSafeTimedSerializer(secret_key, salt="abtest.click")
        self.max_age = max_age

    def dumps(self, token: ClickToken) -> str:
        return self._serializer.dumps([token.slug, token.variant, token.visitor])

    def loads(self, value: str) -> ClickToken:
        """Verify a token; raises :class:`InvalidToken` or :class:`ExpiredToken`."""
        try:
            payload = self._serializer.loads(value, max_age=self.max_age)
        except SignatureExpired as expired:
            raise ExpiredToken("this link has expired", _parse(expired.payload, self)) from None
        except (BadSignature, ValueError, TypeError):
            raise InvalidToken("this link is not valid") from None
        token = _parse(payload, self)
        if token is None:
            raise InvalidToken("this link is not valid")
        return token


def _parse(payload, tokens: ClickTokens) -> ClickToken | None:
    if isinstance(payload, bytes):
        try:
            payload = tokens._serializer.load_payload(payload)
        except BadSignature:
            return None
    if (
        isinstance(payload, list)
        and len(payload) == 3
        and all(isinstance(part, str) for part in payload)
    ):
        return ClickToken(*payload)
    return None
