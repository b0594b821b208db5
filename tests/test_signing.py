"""The signers keyed once, held to stock itsdangerous signing with the same algorithm."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer as StockSigner
from itsdangerous import TimestampSigner as StockTimestampSigner

from abtest.signing import Blake2bMAC, Signer, TimestampSigner

SECRET = "token-test-secret-0123456789"


def stock_signer(secret, salt: str) -> StockSigner:
    """Plain itsdangerous, signing as the service does (keyed BLAKE2b)."""
    return StockSigner(secret, salt=salt, algorithm=Blake2bMAC())


def stock_stamper(secret, salt: str) -> StockTimestampSigner:
    return StockTimestampSigner(secret, salt=salt, algorithm=Blake2bMAC())


@settings(max_examples=200, deadline=None)
@given(payload=st.text(alphabet=string.ascii_letters + string.digits + ":=_-", max_size=80))
def test_signatures_are_stock_itsdangerous_and_any_change_breaks_them(payload):
    ours, stock = Signer(SECRET, salt="abtest.visitor"), stock_signer(SECRET, "abtest.visitor")
    signed = ours.sign(payload)
    assert signed == stock.sign(payload)
    assert ours.unsign(signed) == payload.encode()
    value, _, signature = signed.decode().rpartition(".")
    for index in range(len(signature)):
        for other in "Aa0_-":
            if other != signature[index]:
                changed = f"{value}.{signature[:index]}{other}{signature[index + 1 :]}"
                assert not ours.validate(changed)


def test_older_secret_keys_still_verify_and_the_newest_signs():
    ours = TimestampSigner(["old-secret-0123456789", SECRET], salt="abtest.click")
    from_old = stock_stamper("old-secret-0123456789", "abtest.click").sign("x")
    assert ours.unsign(from_old, max_age=60) == b"x"
    assert stock_stamper(SECRET, "abtest.click").unsign(ours.sign("y"), max_age=60) == b"y"
    stranger = stock_stamper("a-third-secret-0123456", "abtest.click")
    assert not ours.validate(stranger.sign("x"))


def _outcome(signer, value, max_age):
    """What ``unsign`` does with ``value``: what it returns, or the error and its payload."""
    try:
        return ("ok", signer.unsign(value, max_age=max_age))
    except Exception as error:  # noqa: BLE001 - the exact class is what is compared
        return (type(error), getattr(error, "payload", None))


@settings(max_examples=300, deadline=None)
@given(
    payload=st.text(alphabet=string.ascii_letters + string.digits + ":=_-.", max_size=40),
    signed_at=st.one_of(
        st.integers(min_value=1_700_000_000 - 200, max_value=1_700_000_000 + 200),
        st.sampled_from([0, 2**40]),
    ),
    max_age=st.integers(min_value=-5, max_value=120),
    stamp=st.sampled_from([None, "", "!!", "AAAA=", "x.y", "AAAAAAAAAAAAAAA"]),
    tamper=st.booleans(),
)
def test_timestamped_tokens_unsign_exactly_as_stock_itsdangerous(
    payload, signed_at, max_age, stamp, tamper
):
    # Checking signatures from keyed states must return what itsdangerous
    # returns and raise what it raises: genuine and fresh, expired, from the
    # future, with a malformed timestamp under a genuine signature, or tampered with.
    now = 1_700_000_000
    ours = TimestampSigner(SECRET, salt="abtest.click")
    stock = stock_stamper(SECRET, "abtest.click")
    ours.get_timestamp = stock.get_timestamp = lambda: now
    if stamp is None:
        stamped_by = stock_stamper(SECRET, "abtest.click")
        stamped_by.get_timestamp = lambda: signed_at
        value = stamped_by.sign(payload).decode()
    else:  # a genuine signature over a timestamp itsdangerous never writes
        value = stock_signer(SECRET, "abtest.click").sign(f"{payload}.{stamp}").decode()
    if tamper:  # the signature's first character (its last one carries spare bits)
        head, _, signature = value.rpartition(".")
        value = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    assert _outcome(ours, value, max_age) == _outcome(stock, value, max_age)
    # Signing: the same text as stock at the same second.
    assert ours.sign(payload) == stock.sign(payload)


def test_the_timestamp_follows_the_clock_from_second_to_second():
    # sign() encodes the timestamp once a second: each new second must show.
    ours = TimestampSigner(SECRET, salt="abtest.click")
    stock = stock_stamper(SECRET, "abtest.click")
    for now in (1_700_000_000, 1_700_000_000, 1_700_000_001, 1_700_086_400, 1_700_000_001):
        ours.get_timestamp = stock.get_timestamp = lambda now=now: now
        assert ours.sign("colombia-china:a:x") == stock.sign("colombia-china:a:x")
