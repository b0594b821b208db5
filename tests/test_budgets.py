"""Counting budgets per address, exclusions per headline, HEAD, and the bound on click markers."""

from __future__ import annotations

import dataclasses
import html
import re
import time

import pytest
from helpers import BOT, BROWSER, SLUG, front, teasers, totals

from abtest import keys, metrics
from abtest.model import Definition
from abtest.service import client_hasher
from abtest.store import RATE_LIMITED, RedisStore

NOW = 1_790_000_000.0
WINDOW = 3600


@pytest.fixture
def store(redis_client) -> RedisStore:
    store = RedisStore(
        redis_client,
        minute_ttl=7200,
        hour_ttl=86_400,
        budget_window=WINDOW,
        budget_impressions=3,
        budget_clicks=2,
    )
    for slug in ("vote", "poll"):
        definition = Definition(slug=slug, title="T", headlines=("Yes", "No"), body=("T.",))
        store.create(definition, now=NOW)
    return store


def counted(store, slug, client, n=1, now=NOW, variant="a") -> list[str]:
    """Each impression's outcome: "counted", or why not."""
    results = store.record_impressions([(slug, variant)] * n, now=now, client=client)
    return ["counted" if r.counted else r.reason for r in results]


def test_an_address_counts_its_budget_per_experiment_per_window(store, redis_client):
    assert counted(store, "vote", "x", 5) == ["counted"] * 3 + [RATE_LIMITED] * 2
    assert counted(store, "vote", "y", 4) == ["counted"] * 3 + [RATE_LIMITED]  # its own
    assert counted(store, "poll", "x", 3) == ["counted"] * 3  # another experiment's
    assert counted(store, "vote", None, 5) == ["counted"] * 5  # no address, no budget
    assert counted(store, "vote", "x", 1, now=NOW + WINDOW) == ["counted"]  # the next window
    assert store.get("vote").impressions == (3 + 3 + 5 + 1, 0)
    # The excess was served and tallied per headline, not counted.
    assert store.excluded(["vote", "poll"]) == {"vote": {"i:rate-limited:a": 3}, "poll": {}}
    # One key per experiment per window, expiring a window after its last new address.
    window = int(NOW) // WINDOW
    budgets = sorted(redis_client.scan_iter(match="abtest:{vote}:budget:*"))
    assert budgets == [keys.budget("vote", window), keys.budget("vote", window + 1)]
    assert 0 < redis_client.ttl(budgets[0]) <= WINDOW
    assert redis_client.hgetall(budgets[0]) == {"ix": "5", "iy": "4"}


def test_clicks_past_the_budget_are_excluded_and_leave_no_marker(store, redis_client):
    counted(store, "vote", None, 10)
    outcomes = [
        store.record_click("vote", "a", f"visitor-{n}", 3600, now=NOW, client="x") for n in range(4)
    ]
    assert [(c.counted, c.reason) for c in outcomes] == [
        (True, ""),
        (True, ""),
        (False, RATE_LIMITED),
        (False, RATE_LIMITED),
    ]
    # A repeat is no click at all: neither counted nor spent nor excluded.
    repeat = store.record_click("vote", "a", "visitor-0", 3600, now=NOW, client="x")
    assert (repeat.counted, repeat.reason) == (False, "")
    assert store.get("vote").clicks == (2, 0)
    assert store.excluded(["vote"])["vote"] == {"c:rate-limited:a": 2}
    # Markers: one hash per experiment, one field per counted click.
    assert redis_client.hgetall(keys.clicked("vote")) == {"visitor-0": "a", "visitor-1": "a"}
    assert not [k for k in redis_client.scan_iter() if k.startswith("abtest:{vote}:clicked:")]


def test_markers_expire_with_their_lifetime(store, redis_client):
    counted(store, "vote", None, 2)
    assert store.record_click("vote", "a", "v1", 600, now=NOW).counted
    store.load(["vote"])  # asks Redis once whether it expires hash fields
    if store.field_ttl:  # Redis 7.4 and later: each marker by itself
        (ttl,) = redis_client.execute_command("HTTL", keys.clicked("vote"), "FIELDS", 1, "v1")
        assert 0 < ttl <= 600
    else:  # the whole hash, a lifetime after its last click
        assert 0 < redis_client.ttl(keys.clicked("vote")) <= 600
    info = redis_client.info("server")["redis_version"]
    assert store.field_ttl == (tuple(int(p) for p in info.split(".")[:2]) >= (7, 4))


def test_addresses_are_hashed_with_the_secret_and_ipv6_by_its_64():
    hashed = client_hasher("one secret")
    assert hashed(None) is None and hashed("") is None
    first = hashed("203.0.113.9")
    assert len(first) == 12 and "203" not in first
    assert first != hashed("203.0.113.10")
    assert first != client_hasher("another secret")("203.0.113.9")
    # One subscriber's /64 is one client, whichever of its 2^64 addresses it uses.
    assert hashed("2001:db8:1:2::1") == hashed("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert hashed("2001:db8:1:2::1") != hashed("2001:db8:1:3::1")


# -- through the app ---------------------------------------------------------------


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, budget_impressions=3, budget_clicks=1)


def browse(new_client, address: str, **headers):
    browser = new_client()
    page = browser.get(
        "/", headers={"User-Agent": BROWSER, **headers}, environ_base={"REMOTE_ADDR": address}
    )
    return browser, page


def test_a_reader_past_the_budget_is_served_uncounted_with_no_cookie(new_client, service):
    for _ in range(3):
        _, page = browse(new_client, "192.0.2.1")
        assert "Set-Cookie" in page.headers
    browser, page = browse(new_client, "192.0.2.1")
    assert page.status_code == 200
    assert "Set-Cookie" not in page.headers  # no assignment: nothing was counted
    ((link, _),) = teasers(page.data)
    assert link == f"/articles/{SLUG}"  # no click link for an uncounted impression
    assert sum(totals(service)[0]) == 3
    # Another address, behind the same front page, counts.
    _, other = browse(new_client, "192.0.2.2")
    assert "Set-Cookie" in other.headers and sum(totals(service)[0]) == 4


def test_forwarded_addresses_count_only_through_trusted_proxies(settings, redis_client):
    from abtest import create_app

    for hops, expected in ((0, 3), (1, 5)):
        redis_client.flushdb()
        app = create_app(dataclasses.replace(settings, proxy_hops=hops), redis=redis_client)
        try:
            for n in range(5):  # five readers behind one proxy, each forwarded as itself
                page = app.test_client().get(
                    "/",
                    headers={"User-Agent": BROWSER, "X-Forwarded-For": f"192.0.2.{10 + n}"},
                    environ_base={"REMOTE_ADDR": "10.0.0.1"},
                )
                assert page.status_code == 200
            # Trusted, the forwarded addresses spend their own budgets; untrusted,
            # the header is ignored and the proxy's address spends one budget.
            assert sum(totals(app.extensions["abtest"]["service"])[0]) == expected
        finally:
            app.extensions["abtest"]["service"].stop()


def wait_for_excluded(service, slug: str, field: str, expected: int) -> dict:
    """The excluded hash once the refresher has added ``expected`` to ``field``."""
    give_up = time.monotonic() + 20
    while True:
        found = service.store.excluded([slug])[slug]
        if found.get(field, 0) >= expected or time.monotonic() > give_up:
            return found
        time.sleep(0.05)


def test_bots_and_prefetches_are_tallied_per_headline_without_a_round_trip(
    client, new_client, service
):
    front(client)  # the snapshot
    for _ in range(3):
        new_client().get("/", headers={"User-Agent": BOT})
    new_client().get(
        f"/articles/{SLUG}", headers={"User-Agent": BROWSER, "Sec-Purpose": "prefetch"}
    )
    # A reader with a headline whose browser prefetches: no impression to exclude.
    client.get("/", headers={"User-Agent": BROWSER, "Sec-Purpose": "prefetch"})
    # A bot following a reader's link: an excluded click for that headline.
    link, headline = teasers(front(client).data)[0]
    variant = "abc"[service.experiment(SLUG).definition.headlines.index(headline)]
    assert client.get(link, headers={"User-Agent": BOT}).status_code == 303
    found = wait_for_excluded(service, SLUG, f"c:bot:{variant}", 1)
    assert found == {"i:bot:a": 3, "i:prefetch:a": 1, f"c:bot:{variant}": 1}
    assert sum(totals(service)[1]) == 0
    # The stats document has them per headline, by reason.
    document = service.report(SLUG).to_json()
    bot_clicks_on_a = 1 if variant == "a" else 0
    assert document["variants"][0]["excluded"]["bot"] == {
        "impressions": 3,
        "clicks": bot_clicks_on_a,
    }
    assert document["variants"][0]["excluded"]["prefetch"] == {"impressions": 1, "clicks": 0}
    by_id = {row["id"]: row for row in document["variants"]}
    assert by_id[variant]["excluded"]["bot"]["clicks"] == 1
    assert all(
        row["excluded"]["rate-limited"] == {"impressions": 0, "clicks": 0} for row in by_id.values()
    )


def test_rate_limited_readers_show_in_the_stats_document(new_client, service):
    for _ in range(5):
        browse(new_client, "192.0.2.1")
    document = service.report(SLUG).to_json()
    limited = sum(row["excluded"]["rate-limited"]["impressions"] for row in document["variants"])
    assert limited == 2
    assert sum(row["impressions"] for row in document["variants"]) == 3


@pytest.mark.parametrize(
    "path", ["/", f"/articles/{SLUG}", f"/api/v1/experiments/{SLUG}/assignment"]
)
def test_head_counts_nothing_and_sets_no_cookie(client, service, path):
    front_page = front(client.application.test_client())  # one counted reader, for the snapshot
    assert front_page.status_code == 200
    before = totals(service)
    response = client.head(path, headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert totals(service) == before
    assert service.store.excluded([SLUG])[SLUG] == {}


def test_head_on_a_click_link_counts_no_click(client, service):
    link, _ = teasers(front(client).data)[0]
    response = client.head(link, headers={"User-Agent": BROWSER})
    assert response.status_code == 303 and "Set-Cookie" not in response.headers
    assert sum(totals(service)[1]) == 0
    assert client.get(link, headers={"User-Agent": BROWSER}).status_code == 303
    assert sum(totals(service)[1]) == 1  # the real click still counts


def sample(name: str, outcome: str, reason: str) -> float:
    labels = {"outcome": outcome, "reason": reason}
    return metrics.REGISTRY.get_sample_value(f"abtest_{name}_total", labels) or 0.0


def test_every_outcome_is_in_the_metrics(new_client, service):
    outcomes = [
        ("impressions", "counted", ""),
        ("impressions", "excluded", "rate-limited"),
        ("impressions", "excluded", "bot"),
        ("clicks", "counted", ""),
        ("clicks", "excluded", "rate-limited"),
    ]
    before = {outcome: sample(*outcome) for outcome in outcomes}
    links = []
    for _ in range(4):
        _, page = browse(new_client, "192.0.2.1")
        links.append(teasers(page.data)[0][0])
    new_client().get("/", headers={"User-Agent": BOT})
    browsers = []
    for _ in range(2):
        browser, page = browse(new_client, "192.0.2.9")
        browsers.append((browser, teasers(page.data)[0][0]))
    for browser, link in browsers:
        browser.get(
            link, headers={"User-Agent": BROWSER}, environ_base={"REMOTE_ADDR": "192.0.2.9"}
        )
    gained = {outcome: sample(*outcome) - before[outcome] for outcome in outcomes}
    assert gained == {
        ("impressions", "counted", ""): 5,
        ("impressions", "excluded", "rate-limited"): 1,
        ("impressions", "excluded", "bot"): 1,
        ("clicks", "counted", ""): 1,
        ("clicks", "excluded", "rate-limited"): 1,
    }
    seconds = metrics.REGISTRY.get_sample_value(
        "abtest_redis_seconds_count", {"call": "impression"}
    )
    assert seconds and seconds >= 6


def test_the_experiment_page_shows_what_was_not_counted_beside_impressions(
    client, new_client, service
):
    for _ in range(5):
        browse(new_client, "192.0.2.1")
    login = client.get("/dashboard/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login.text).group(1)
    signed = client.post(
        "/dashboard/login",
        data={"username": "editor", "password": "correct horse", "csrf_token": token},
    )
    assert signed.status_code == 303
    page = client.get(f"/dashboard/{SLUG}")
    assert page.status_code == 200
    assert "Not counted" in page.text
    cells = re.findall(r'<td class="num excluded" id="excluded-([a-c])">(.*?)</td>', page.text)
    shown = {variant: html.unescape(re.sub("<[^>]+>", "", text)) for variant, text in cells}
    assert set(shown) == {"a", "b", "c"}
    limited = [int(text.split()[0]) for text in shown.values() if "rate-limited" in text]
    assert sum(limited) == 2
