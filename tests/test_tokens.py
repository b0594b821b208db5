"""Signed visitor cookies and click tokens."""

from __future__ import annotations

import string

import pytest
from itsdangerous import Signer, TimestampSigner

from abtest.signing import Blake2bMAC
from abtest.tokens import (
    ClickToken,
    ClickTokens,
    ExpiredToken,
    InvalidToken,
    Visitor,
    VisitorCookies,
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
    # Plain itsdangerous verifies it: keying once changes nothing on the wire.
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
    # Genuine, but not a click token's payload (one naming a visitor id, not a ref).
    with pytest.raises(InvalidToken):
        tokens.loads(stock.sign("colombia-china:c:visitor_1"))
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


def test_new_visitor_ids_are_random_url_safe_text():
    ids = [Visitor.new().id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(
        len(i) == 16 and set(i) <= set(string.ascii_letters + string.digits + "-_") for i in ids
    )
    # 96 random bits: every one of the 64 symbols turns up in 2,000 ids.
    assert len(set("".join(ids))) == 64


def test_a_visitor_is_immutable_and_new_assignments_make_a_new_one():
    visitor = Visitor("visitor_1", {"colombia-china": "b"})
    with pytest.raises(TypeError):
        visitor.assignments["budget"] = "a"
    more = visitor.with_assignments({"budget": "a"})
    assert dict(visitor.assignments) == {"colombia-china": "b"}
    assert list(more.assignments.items()) == [("colombia-china", "b"), ("budget", "a")]
    assert more.id == visitor.id
    # Built from a caller's dict, it keeps its own copy.
    given = {"colombia-china": "c"}
    copied = Visitor("visitor_2", given)
    given["budget"] = "a"
    assert dict(copied.assignments) == {"colombia-china": "c"}


def test_a_seen_impression_is_its_variant_in_capitals():
    cookies = VisitorCookies(SECRET)
    visitor = Visitor("abcDEF_123-x", {"colombia-china": "b", "budget": "a"})
    seen = visitor.with_seen(["budget"])
    assert seen.seen == frozenset({"budget"}) and seen.assignments == visitor.assignments
    value = cookies.dumps(seen)
    payload = stock_signer(SECRET, "abtest.visitor").unsign(value).decode()
    assert payload == "abcDEF_123-x:colombia-china=b:budget=A"
    assert cookies.loads(value) == seen
    assert cookie_records(value, "budget", "a") and cookie_records(value, "colombia-china", "b")
    assert not cookie_records(value, "budget", "b")
    # New assignments keep what was seen; a seen slug must be one of its assignments.
    assert seen.with_assignments({"third": "c"}).seen == frozenset({"budget"})
    assert Visitor("abcDEF_123-x", {"x": "a"}, ["x", "y"]).seen == frozenset({"x"})
    # Anything else in the variant's place is a malformed cookie.
    for bad in ("abcDEF_123-x:budget=AB", "abcDEF_123-x:budget=1", "abcDEF_123-x:budget=é"):
        assert cookies.loads(stock_signer(SECRET, "abtest.visitor").sign(bad).decode()) is None
