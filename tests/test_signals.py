"""Seen impressions, quality clicks, and the reward and denominator the statistics use.

Against a real Redis, through the app's own endpoints: the snippet's seen
beacon (``POST /api/v1/seen``), its engaged-time beacon (``POST
/api/v1/engaged``) and the click's onward path (``/c/<token>?to=``).
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from helpers import BOT, BROWSER, SLUG, front

from abtest import create_app
from abtest.model import QUALITY, SEEN, Definition
from abtest.stats import seen_check

SECOND = "second"


def batch(browser, slugs: str = SLUG, **environ) -> list[dict]:
    response = browser.get(
        f"/api/v1/assignments?slugs={slugs}",
        headers={"User-Agent": BROWSER},
        environ_overrides=environ,
    )
    assert response.status_code == 200
    return response.get_json()["assignments"]


def beacon(browser, path: str, body, user_agent: str = BROWSER, **environ):
    """What navigator.sendBeacon sends: a string, as text/plain."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return browser.post(
        path,
        data=data,
        content_type="text/plain;charset=UTF-8",
        headers={"User-Agent": user_agent},
        environ_overrides=environ,
    )


def seen_beacon(browser, tokens, **kwargs):
    return beacon(browser, "/api/v1/seen", {"tokens": tokens}, **kwargs)


def engaged_beacon(browser, slug: str = SLUG, seconds: float = 15, **kwargs):
    return beacon(browser, "/api/v1/engaged", {"experiment": slug, "seconds": seconds}, **kwargs)


def counts(service, slug: str = SLUG) -> dict[str, tuple[int, ...]]:
    experiment = service.store.get(slug)
    return {
        "served": experiment.served,
        "seen": experiment.seen,
        "clicks": experiment.all_clicks,
        "quality": experiment.quality_clicks,
    }


def click(browser, assignment: dict, to: str | None = None):
    url = assignment["click_url"] + ("" if to is None else f"?to={to}")
    return browser.get(url, headers={"User-Agent": BROWSER})


def one_hot(variant: str, n: int = 1) -> tuple[int, ...]:
    return tuple(n if v == variant else 0 for v in "abc")


# -- seen -------------------------------------------------------------------


def test_a_seen_beacon_counts_each_visitor_once(new_client, service):
    reader = new_client()
    (one,) = batch(reader)
    assert one["token"] and one["click_url"].endswith(one["token"])
    assert seen_beacon(reader, [one["token"]]).status_code == 204
    assert counts(service)["seen"] == one_hot(one["variant"])
    # Replayed, by the page or by hand: nothing more.
    assert seen_beacon(reader, [one["token"], one["token"]]).status_code == 204
    assert counts(service)["seen"] == one_hot(one["variant"])
    other = new_client()
    (theirs,) = batch(other)
    seen_beacon(other, [theirs["token"]])
    assert sum(counts(service)["seen"]) == 2
    assert counts(service)["served"] == tuple(
        a + b for a, b in zip(one_hot(one["variant"]), one_hot(theirs["variant"]), strict=True)
    )


def test_forged_or_foreign_beacons_count_nothing(new_client, service):
    reader, stranger = new_client(), new_client()
    (one,) = batch(reader)
    (theirs,) = batch(stranger)
    token = one["token"]
    slug, variant, rest = token.split(":", 2)
    other_variant = "b" if variant == "a" else "a"
    forged = [
        f"{slug}:{other_variant}:{rest}",  # another headline
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # another signature
        "not-a-token",
    ]
    for bad in forged:
        response = seen_beacon(reader, [bad])
        assert response.status_code == 400, bad
        assert "not valid" in response.get_json()["error"]
    # A good token with a forged one: the whole beacon is refused.
    assert seen_beacon(reader, [token, forged[0]]).status_code == 400
    # Another browser's token (copied out of a page): not this browser's to report.
    response = seen_beacon(reader, [theirs["token"]])
    assert response.status_code == 403
    assert "not issued to this browser" in response.get_json()["error"]
    assert seen_beacon(new_client(), [token]).status_code == 403  # no cookie at all
    assert sum(counts(service)["seen"]) == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        ({"tokens": []}, '{"tokens": [...]}'),
        ({"tokens": "abc"}, '{"tokens": [...]}'),
        ({"tokens": [1]}, '{"tokens": [...]}'),
        ({"tokens": ["x"] * 21}, "at most 20"),
        ("x" * 20_000, "at most 16384 bytes"),
    ],
)
def test_malformed_seen_beacons_get_a_clear_400(new_client, service, body, words):
    reader = new_client()
    batch(reader)
    response = beacon(reader, "/api/v1/seen", body)
    assert response.status_code == 400
    assert words in response.get_json()["error"]
    assert sum(counts(service)["seen"]) == 0


def test_seen_counts_only_while_running_and_never_for_bots(new_client, service):
    reader = new_client()
    (one,) = batch(reader)
    assert seen_beacon(reader, [one["token"]], user_agent=BOT).status_code == 204
    service.pause(SLUG, "ed")
    assert seen_beacon(reader, [one["token"]]).status_code == 204
    assert sum(counts(service)["seen"]) == 0
    service.resume(SLUG, "ed")
    service.fresh(SLUG)
    seen_beacon(reader, [one["token"]])
    assert sum(counts(service)["seen"]) == 1


def test_a_counted_click_counts_its_impression_as_seen_once(new_client, service):
    # Seen by the beacon, then clicked: seen once.
    first = new_client()
    (one,) = batch(first)
    seen_beacon(first, [one["token"]])
    assert click(first, one).status_code == 303
    # Clicked before any beacon (the reader was quick): the click says it was seen.
    second = new_client()
    (two,) = batch(second)
    assert click(second, two).status_code == 303
    # ...and the beacon that follows adds nothing.
    seen_beacon(second, [two["token"]])
    found = counts(service)
    assert sum(found["seen"]) == 2 and sum(found["clicks"]) == 2
    rows = zip(found["clicks"], found["seen"], found["served"], strict=True)
    assert all(c <= s <= n for c, s, n in rows)


def test_seen_beacons_spend_the_address_budget(settings, redis_client):
    app = create_app(dataclasses.replace(settings, budget_impressions=3), redis=redis_client)
    service = app.extensions["abtest"]["service"]
    try:
        readers = [app.test_client() for _ in range(4)]
        # Served from four addresses (within their budgets), reported from one.
        found = [batch(r, REMOTE_ADDR=f"192.0.2.{i}")[0] for i, r in enumerate(readers)]
        for reader, one in zip(readers, found, strict=True):
            response = seen_beacon(reader, [one["token"]], REMOTE_ADDR="198.51.100.7")
            assert response.status_code == 204
        assert sum(counts(service)["seen"]) == 3
        excluded = service.store.excluded([SLUG])[SLUG]
        assert sum(n for field, n in excluded.items() if field.startswith("s:rate-limited:")) == 1
    finally:
        service.stop()


# -- quality clicks ------------------------------------------------------------


def test_a_click_becomes_a_quality_click_once_after_the_threshold(new_client, service):
    reader = new_client()
    (one,) = batch(reader)
    click(reader, one)
    assert engaged_beacon(reader, seconds=14.5).status_code == 204  # not yet
    assert counts(service)["quality"] == (0, 0, 0)
    assert engaged_beacon(reader, seconds=15).status_code == 204
    assert counts(service)["quality"] == one_hot(one["variant"])
    assert engaged_beacon(reader, seconds=40).status_code == 204  # once
    assert counts(service)["quality"] == one_hot(one["variant"])


def test_reading_without_a_counted_click_is_no_quality_click(new_client, service):
    reader = new_client()
    batch(reader)  # served, never clicked
    assert engaged_beacon(reader).status_code == 204
    assert engaged_beacon(new_client()).status_code == 204  # no cookie
    clicker = new_client()
    (one,) = batch(clicker)
    click(clicker, one)
    assert engaged_beacon(clicker, user_agent=BOT).status_code == 204
    assert counts(service)["quality"] == (0, 0, 0)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ("{", 400, "JSON object"),
        ({"experiment": "Not A Slug", "seconds": 20}, 400, "send {"),
        ({"seconds": 20}, 400, "send {"),
        ({"experiment": SLUG, "seconds": "20"}, 400, "number of seconds"),
        ({"experiment": SLUG, "seconds": -1}, 400, "number of seconds"),
        ({"experiment": SLUG, "seconds": True}, 400, "number of seconds"),
        ({"experiment": "no-such-story", "seconds": 20}, 404, "no experiment"),
    ],
)
def test_malformed_engaged_beacons_get_a_clear_4xx(new_client, service, body, status, words):
    reader = new_client()
    (one,) = batch(reader)
    click(reader, one)
    response = beacon(reader, "/api/v1/engaged", body)
    assert response.status_code == status
    assert words in response.get_json()["error"]
    assert counts(service)["quality"] == (0, 0, 0)


def test_a_nan_in_an_engaged_beacon_is_refused(new_client, service):
    reader = new_client()
    body = json.dumps({"experiment": SLUG, "seconds": float("nan")})
    assert "NaN" in body
    response = beacon(reader, "/api/v1/engaged", body)
    assert response.status_code == 400


# -- the click's onward path ----------------------------------------------------


@pytest.mark.parametrize(
    ("to", "location"),
    [
        ("/story/colombia?from=home#top", "/story/colombia?from=home#top"),
        ("//evil.example/x", f"/articles/{SLUG}"),
        ("/\\evil.example/x", f"/articles/{SLUG}"),
        ("https://evil.example/x", f"/articles/{SLUG}"),
        ("/story/%0d%0aSet-Cookie:x", "/story/%0d%0aSet-Cookie:x"),
        ("javascript:alert(1)", f"/articles/{SLUG}"),
    ],
)
def test_a_click_goes_on_only_to_a_path_of_this_site(new_client, service, to, location):
    from urllib.parse import quote

    reader = new_client()
    (one,) = batch(reader)
    response = click(reader, one, to=quote(to, safe=""))
    assert response.status_code == 303
    assert response.headers["Location"] == location
    assert sum(counts(service)["clicks"]) == 1


# -- abtest's own pages ---------------------------------------------------------


def test_the_front_page_marks_each_counted_teaser_with_its_token(new_client, service):
    reader = new_client()
    page = front(reader).get_data(True)
    assert page.count("data-abtest-token=") == 1
    token = page.split('data-abtest-token="', 1)[1].split('"', 1)[0]
    assert f'href="/c/{token}"' in page
    assert '<script src="/abtest.js" defer></script>' in page
    assert seen_beacon(reader, [token]).status_code == 204
    assert sum(counts(service)["seen"]) == 1
    # A bot's front page: nothing to report.
    assert "data-abtest-token" not in front(new_client(), **{"User-Agent": BOT}).get_data(True)


def test_the_story_page_is_marked_for_engaged_time(client):
    page = client.get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER}).get_data(True)
    assert f'data-abtest-story="{SLUG}"' in page


# -- the reward and the denominator ---------------------------------------------


def _write_counts(redis_client, slug: str, fields: dict[str, int]) -> None:
    redis_client.hset(f"abtest:{{{slug}}}:counts", mapping=fields)


def test_the_statistics_use_the_chosen_reward_and_denominator(service, redis_client):
    fields = {"i:a": 1000, "i:b": 1000, "i:c": 1000, "s:a": 300, "s:b": 500, "s:c": 400}
    fields |= {"c:a": 60, "c:b": 50, "c:c": 40, "q:a": 10, "q:b": 30, "q:c": 20}
    _write_counts(redis_client, SLUG, fields)
    experiment = service.fresh(SLUG)
    assert (experiment.impressions, experiment.clicks) == ((1000,) * 3, (60, 50, 40))
    changed = service.set_settings(SLUG, "clicks", 0.02, "ed", reward=QUALITY, denominator=SEEN)
    assert (changed.reward, changed.denominator) == (QUALITY, SEEN)
    assert (changed.impressions, changed.clicks) == ((300, 500, 400), (10, 30, 20))
    assert (changed.served, changed.all_clicks) == ((1000,) * 3, (60, 50, 40))
    document = service.report(SLUG).to_json()
    assert (document["reward"], document["denominator"]) == ("quality", "seen")
    rows = document["variants"]
    assert [row["impressions"] for row in rows] == [300, 500, 400]
    assert [row["clicks"] for row in rows] == [10, 30, 20]
    assert [row["served"] for row in rows] == [1000] * 3
    assert [row["all_clicks"] for row in rows] == [60, 50, 40]
    assert [row["quality_rate"] for row in rows] == [10 / 300, 30 / 500, 20 / 400]
    assert [row["click_rate"] for row in rows] == [60 / 300, 50 / 500, 40 / 400]
    assert [row["seen_share"] for row in rows] == [0.3, 0.5, 0.4]
    # The leader by quality clicks per reader who saw it is B, not A.
    assert max(range(3), key=lambda i: rows[i]["ctr"]) == 1
    # A new impression's counts (the script's reply) keep to the choice.
    (result,) = service.store.record_impressions([(SLUG, "a")], with_counts=[True])
    entry = service.snapshot.entries()[SLUG]
    fresh = service.snapshot.update(entry, result.status, result.winner, result.counts)
    assert fresh.impressions == (300, 500, 400) and fresh.served == (1001, 1000, 1000)


def test_bad_measures_are_refused(service):
    from abtest.model import InvalidExperiment

    with pytest.raises(InvalidExperiment) as refused:
        service.set_settings(SLUG, "clicks", 0.02, "ed", reward="likes", denominator="read")
    assert set(refused.value.errors) == {"reward", "denominator"}


# -- the seen-share check: R's prop.test, Holm-adjusted -------------------------

# Computed by R 4 (Rscript):
#
#   options(digits = 17)
#   pairs <- function(served, seen) {
#     idx <- combn(length(served), 2)
#     p.adjust(apply(idx, 2, function(ij)
#       prop.test(seen[ij], served[ij], correct = FALSE)$p.value), "holm")
#   }
#   pairs(c(4000, 4100, 3900), c(2080, 1271, 2030))  # pairs AB, AC, BC
#   pairs(c(4000, 4100, 3900), c(2080, 2050, 2030))
#   pairs(c(900, 950), c(430, 360))
R_ONE_OFF = (1.4400766651579783e-81, 9.6361769614818704e-01, 3.6380791770493992e-81)
R_ALIKE = (0.19973233041070101, 0.96361769614818704, 0.19973233041070101)
R_TWO = 1.7446086845626646e-05


def test_the_seen_check_flags_the_headline_whose_slot_was_seen_less():
    check = seen_check((4000, 4100, 3900), (2080, 1271, 2030), (100, 60, 90))
    assert check.applies and check.flagged == (False, True, False)
    ab, ac, bc = R_ONE_OFF
    expected = (max(ab, ac), max(ab, bc), max(ac, bc))
    for found, want in zip(check.p_values, expected, strict=True):
        assert math.isclose(found, want, rel_tol=1e-9)


def test_the_seen_check_flags_nothing_when_the_shares_agree():
    check = seen_check((4000, 4100, 3900), (2080, 2050, 2030), (100, 60, 90))
    assert check.applies and check.flagged == (False, False, False)
    ab, ac, bc = R_ALIKE
    for found, want in zip(check.p_values, (max(ab, ac), max(ab, bc), max(ac, bc)), strict=True):
        assert math.isclose(found, want, rel_tol=1e-9)


def test_with_two_headlines_both_are_flagged():
    check = seen_check((900, 950), (430, 360), (10, 12))
    assert check.flagged == (True, True)
    assert all(math.isclose(p, R_TWO, rel_tol=1e-9) for p in check.p_values)


def test_a_significant_but_small_difference_is_not_flagged():
    # 50.0% against 48.5% over a million readers each: beyond chance, within 10%.
    check = seen_check((1_000_000, 1_000_000), (500_000, 485_000), (0, 0))
    assert check.p_values[0] < 1e-50 and check.flagged == (False, False)


def test_the_seen_check_waits_for_beacons():
    # Seen impressions that are only the clickers' say nothing of the slot.
    assert not seen_check((4000, 4000), (90, 30), (90, 30)).applies
    assert not seen_check((400, 400), (40, 30), (1, 1)).applies  # too few
    assert seen_check((400, 400), (60, 50), (1, 1)).applies


def test_the_stats_document_flags_a_slot_pushed_below_the_fold(service, redis_client):
    fields = {"i:a": 4000, "i:b": 4100, "i:c": 3900, "s:a": 2080, "s:b": 1271, "s:c": 2030}
    _write_counts(redis_client, SLUG, fields | {"c:a": 100, "c:b": 60, "c:c": 90})
    document = service.report(SLUG).to_json()
    assert document["seen_check"]["applies"] is True
    assert document["seen_check"]["flagged"] == ["b"]


def test_a_second_story_counts_apart(new_client, service):
    definition = Definition(slug=SECOND, title="Second", headlines=("One", "Two"), body=("T.",))
    assert service.create(definition)
    reader = new_client()
    first, second = batch(reader, f"{SLUG},{SECOND}")
    assert seen_beacon(reader, [first["token"], second["token"]]).status_code == 204
    assert sum(counts(service)["seen"]) == 1
    assert sum(counts(service, SECOND)["seen"]) == 1


def test_beacons_are_in_the_metrics(new_client, service):
    from abtest import metrics

    def value(name: str, outcome: str, reason: str = "") -> float:
        labels = {"outcome": outcome, "reason": reason}
        return metrics.REGISTRY.get_sample_value(f"abtest_{name}_total", labels) or 0.0

    def read() -> dict[str, float]:
        return {
            "seen": value("seen_impressions", "counted"),
            "repeat": value("seen_impressions", "uncounted", "repeat"),
            "forged": value("seen_impressions", "refused", "forged"),
            "quality": value("quality_clicks", "counted"),
            "not-clicked": value("quality_clicks", "uncounted", "not-clicked"),
        }

    before = read()
    reader = new_client()
    (one,) = batch(reader)
    seen_beacon(reader, [one["token"]])
    seen_beacon(reader, [one["token"]])
    seen_beacon(reader, ["forged"])
    engaged_beacon(reader)  # no click yet
    click(reader, one)
    engaged_beacon(reader)
    after = read()
    assert {name: after[name] - before[name] for name in before} == dict.fromkeys(before, 1)


def test_the_cookie_remembers_a_seen_impression(new_client, service, redis_client, settings):
    reader = new_client()
    (one,) = batch(reader)
    before = reader.get_cookie("abtest_visitor").value
    response = seen_beacon(reader, [one["token"]])
    assert response.status_code == 204
    after = reader.get_cookie("abtest_visitor").value
    # The variant in capitals: seen.
    assert f":{SLUG}={one['variant'].upper()}" in after and after != before
    # The reader's pages ask for no more beacons: no token to report.
    (again,) = batch(reader)
    assert again["variant"] == one["variant"] and again["token"] is None
    assert again["click_url"].startswith("/c/")  # the click still counts
    assert "data-abtest-token" not in front(reader).get_data(True)
    # A beacon from the cookie as it was (a replay) meets the seen marker.
    reader.set_cookie("abtest_visitor", before)
    assert seen_beacon(reader, [one["token"]]).status_code == 204
    assert sum(counts(service)["seen"]) == 1
    # The marker only has to outlive the token it stops.
    key = f"abtest:{{{SLUG}}}:seen"
    if service.store.field_ttl:  # Redis 7.4 or newer: each marker expires by itself
        (field,) = redis_client.hkeys(key)
        (ttl,) = redis_client.execute_command("HTTL", key, "FIELDS", 1, field)
    else:
        ttl = redis_client.ttl(key)
    assert 0 < ttl <= service.SEEN_WITHIN
    # And the click, which needs its headline in the cookie, counts.
    assert click(reader, again).status_code == 303
    assert counts(service)["clicks"] == one_hot(one["variant"])
    assert counts(service)["seen"] == one_hot(one["variant"])


def test_a_token_over_an_hour_old_is_seen_no_more(new_client, service, settings):
    import time

    from itsdangerous import TimestampSigner

    from abtest.signing import Blake2bMAC

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - service.SEEN_WITHIN - 60

    reader = new_client()
    (one,) = batch(reader)
    payload = one["token"].split(".", 1)[0]  # slug:variant:visitor ref
    signer = Earlier(settings.secret_key, salt="abtest.click", algorithm=Blake2bMAC())
    old = signer.sign(payload).decode()
    assert service.click_tokens.loads(old).slug == SLUG  # still a good click link
    assert seen_beacon(reader, [old]).status_code == 204
    assert sum(counts(service)["seen"]) == 0
    # The cookie is not marked: a later page's fresh token is counted.
    assert seen_beacon(reader, [one["token"]]).status_code == 204
    assert sum(counts(service)["seen"]) == 1


def test_a_reader_who_clicked_is_seen_once_however_long_after(new_client, service, redis_client):
    reader = new_client()
    (one,) = batch(reader)
    click(reader, one)  # quick: before any beacon; the click counts the impression as seen
    assert sum(counts(service)["seen"]) == 1
    # The seen marker is gone (an hour on), the click marker (a month) is not.
    redis_client.delete(f"abtest:{{{SLUG}}}:seen")
    (again,) = batch(reader)
    assert again["token"]  # the cookie was not marked by the click
    assert seen_beacon(reader, [again["token"]]).status_code == 204
    assert sum(counts(service)["seen"]) == 1
