"""Signed visitor cookies and click tokens."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from itsdangerous import Signer, TimestampSigner

from abtest.tokens import (
    Blake2bMAC,
    ClickToken,
    ClickTokens,
    ExpiredToken,
    InvalidToken,
    Visitor,
    VisitorCookies,
    _Signer,
    _TimestampSigner,
    cookie_records,
    cookie_visitor_id,
    visitor_ref,
)

SECRET = "token-test-secret-0123456789"


def stock_signer(secret, salt: str) -> Signer:
    """Plain itsdangerous, signing as the service does (keyed BLAKE2b)."""
    return Signer(secret, salt=salt, algorithm=Blake2bMAC())


def stock_stamper(secret, salt: str) -> TimestampSigner:
    return TimestampSigner(secret, salt=salt, algorithm=Blake2bMAC())


def test_visitor_cookie_round_trip_and_forgery():
    cookies = VisitorCookies(SECRET)
    visitor = Visitor("abcDEF_123-x", {"colombia-china": "b", "budget": "a"})
    value = cookies.dumps(visitor)
    assert cookies.loads(value) == visitor
    # Plain itsdangerous verifies it: the key cache changes nothing on the wire.
    assert stock_signer(SECRET, "abtest.visitor").unsign(value)
    assert cookies.loads(value.replace("=b", "=c")) is None
    assert VisitorCookies("another-secret-0123456789").loads(value) is None
    for junk in ("", "nonsense", "a.b.c", value + "x"):
        assert cookies.loads(junk) is None


def test_click_token_round_trip_forgery_and_expiry():
    tokens = ClickTokens(SECRET, max_age=60)
    ref = visitor_ref("visitor_1")
    token = ClickToken("colombia-china", "c", ref)
    value = tokens.dumps(token)
    assert tokens.loads(value) == token
    # The same wire format as plain itsdangerous, both ways.
    stock = stock_stamper(SECRET, "abtest.click")
    assert stock.unsign(value, max_age=60) == f"colombia-china:c:{ref}".encode()
    assert tokens.loads(stock.sign(f"colombia-china:c:{ref}")) == token
    with pytest.raises(InvalidToken):
        tokens.loads(value.replace(":c:", ":a:"))
    with pytest.raises(InvalidToken):
        tokens.loads("garbage")
    # Genuine, from before tokens named a visitor ref (the id itself): as if
    # expired, fresh or not, so the reader gets the story, uncounted.
    for lifetime in (60, -1):
        with pytest.raises(ExpiredToken) as legacy:
            ClickTokens(SECRET, max_age=lifetime).loads(stock.sign("colombia-china:c:visitor_1"))
        assert legacy.value.token == ClickToken("colombia-china", "c", "")
    stale = stock_stamper(SECRET, "abtest.click").sign(f"colombia-china:c:{ref}")
    # Signed just now; a negative lifetime makes it already too old.
    with pytest.raises(ExpiredToken) as expired:
        ClickTokens(SECRET, max_age=-1).loads(stale)
    assert expired.value.token == token


def test_a_cookie_is_not_a_click_token_and_vice_versa():
    cookies, tokens = VisitorCookies(SECRET), ClickTokens(SECRET, max_age=60)
    cookie = cookies.dumps(Visitor("visitor_1", {"colombia-china": "c"}))
    with pytest.raises(InvalidToken):
        tokens.loads(cookie)
    token = tokens.dumps(ClickToken("colombia-china", "c", visitor_ref("visitor_1")))
    assert cookies.loads(token) is None


def test_a_visitor_ref_hides_the_id_and_the_cookie_gives_the_id_back():
    visitor = Visitor.new()
    ref = visitor_ref(visitor.id)
    assert len(ref) == 24 and visitor.id not in ref and ref == visitor_ref(visitor.id)
    assert ref != visitor_ref(Visitor.new().id)
    cookie = VisitorCookies(SECRET).dumps(visitor._replace(assignments={"s": "b"}))
    assert cookie_visitor_id(cookie) == visitor.id
    assert cookie_records(cookie, "s", "b")
    assert not cookie_records(cookie, "s", "a") and not cookie_records(cookie, "t", "b")
    # Only a whole slug=variant pair counts, and not from the signature.
    two = VisitorCookies(SECRET).dumps(Visitor(visitor.id, {"ss": "b", "s-2": "a"}))
    assert not cookie_records(two, "s", "b") and cookie_records(two, "s-2", "a")
    for junk in (None, "", ".sig", ":s=b.sig", "a b:s=b.sig", "x" * 65 + ":s=b.sig"):
        assert cookie_visitor_id(junk) is None
    assert cookie_visitor_id("abc.sig") == "abc"  # a cookie with no assignments


@settings(max_examples=200, deadline=None)
@given(payload=st.text(alphabet=string.ascii_letters + string.digits + ":=_-", max_size=80))
def test_signatures_are_stock_itsdangerous_and_any_change_breaks_them(payload):
    ours, stock = _Signer(SECRET, salt="abtest.visitor"), stock_signer(SECRET, "abtest.visitor")
    signed = ours.sign(payload)
    assert signed == stock.sign(payload)
    assert ours.unsign(signed) == payload.encode()
    value, _, signature = signed.decode().rpartition(".")
    for index in range(len(signature)):
        for other in "Aa0_-":
            if other != signature[index]:
                changed = f"{value}.{signature[:index]}{other}{signature[index + 1 :]}"
                assert not ours.validate(changed)


def test_values_signed_with_hmac_sha1_before_still_verify():
    # itsdangerous's default algorithm signed cookies and links before keyed
    # BLAKE2b did: a reader's cookie from then still names their headlines.
    visitor = Visitor("abcDEF_123-x", {"colombia-china": "b"})
    old_cookie = Signer(SECRET, salt="abtest.visitor").sign("abcDEF_123-x:colombia-china=b")
    cookies = VisitorCookies(SECRET)
    assert cookies.loads(old_cookie.decode()) == visitor
    assert cookies.dumps(visitor) != old_cookie.decode()  # re-signed the new way
    assert cookies.loads(old_cookie.decode().replace("=b", "=c")) is None
    ref = visitor_ref("visitor_1")
    old_link = TimestampSigner(SECRET, salt="abtest.click").sign(f"colombia-china:c:{ref}")
    assert ClickTokens(SECRET, max_age=60).loads(old_link.decode()) == ClickToken(
        "colombia-china", "c", ref
    )
    # Under another secret, neither algorithm verifies.
    assert VisitorCookies("another-secret-0123456789").loads(old_cookie.decode()) is None


def test_older_secret_keys_still_verify_and_the_newest_signs():
    ours = _TimestampSigner(["old-secret-0123456789", SECRET], salt="abtest.click")
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
    # The short way through unsign must return what itsdangerous returns and
    # raise what it raises: genuine and fresh, expired, from the future, with
    # a malformed timestamp under a genuine signature, or tampered with.
    now = 1_700_000_000
    ours = _TimestampSigner(SECRET, salt="abtest.click")
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


def test_new_visitor_ids_are_random_url_safe_text():
    ids = [Visitor.new().id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(
        len(i) == 16 and set(i) <= set(string.ascii_letters + string.digits + "-_") for i in ids
    )
    # 96 random bits: every one of the 64 symbols turns up in 2,000 ids.
    assert len(set("".join(ids))) == 64


def test_the_timestamp_follows_the_clock_from_second_to_second():
    # sign() encodes the timestamp once a second: each new second must show.
    ours = _TimestampSigner(SECRET, salt="abtest.click")
    stock = stock_stamper(SECRET, "abtest.click")
    for now in (1_700_000_000, 1_700_000_000, 1_700_000_001, 1_700_086_400, 1_700_000_001):
        ours.get_timestamp = stock.get_timestamp = lambda now=now: now
        assert ours.sign("colombia-china:a:x") == stock.sign("colombia-china:a:x")
