"""One client trying to pick the winner, and a newsroom behind one address, against the app.

The attack is the one a reader can run with nothing but a loop: ask the
assignment API as a browser with no cookie; when the answer is the headline
to push (A), follow its click link with the cookie just set.  The per-address
budgets bound what it can count; honest readers sharing one address (an
office, a carrier's NAT) are counted in full.
"""

from __future__ import annotations

import numpy as np
from helpers import BROWSER, teasers

from abtest import keys
from abtest.model import Definition

SLUG = "attacked"
ATTACKER = "203.0.113.66"
OFFICE = "198.51.100.7"
HEADLINES = ("Push me", "Honest one", "Honest two")
#: A few hours of a front-page test: A at 1.5%, B and C at 2% (A's P(best) about 0.01).
UNDERDOG = {"i:a": 4000, "c:a": 60, "i:b": 4000, "c:b": 80, "i:c": 4000, "c:c": 80}
#: A young test, all three at 2%: A is drawn often, so the attacker clicks a lot.
YOUNG = {"i:a": 300, "c:a": 6, "i:b": 300, "c:b": 6, "i:c": 300, "c:c": 6}


def prob_best(impressions, clicks, draws: int = 200_000) -> np.ndarray:
    """P(each CTR is the highest) under Beta(1 + k, 1 + n - k), by simulation (fixed seed)."""
    rng = np.random.default_rng(20240614)
    samples = np.column_stack(
        [rng.beta(1 + k, 1 + n - k, draws) for n, k in zip(impressions, clicks, strict=True)]
    )
    return np.bincount(samples.argmax(axis=1), minlength=len(impressions)) / draws


def counts(service) -> tuple[tuple[int, ...], tuple[int, ...]]:
    experiment = service.store.get(SLUG)
    return experiment.impressions, experiment.clicks


def attack(app, rounds: int, address: str = ATTACKER) -> dict[str, int]:
    """``rounds`` cookie-less visits to the assignment API; each time it says A, its link."""
    done = {"visits": 0, "a": 0, "click_links": 0, "story_links": 0}
    for _ in range(rounds):
        browser = app.test_client()
        answer = browser.get(
            f"/api/v1/experiments/{SLUG}/assignment",
            headers={"User-Agent": BROWSER},
            environ_base={"REMOTE_ADDR": address},
        ).get_json()
        done["visits"] += 1
        if answer["variant"] == "a":
            done["a"] += 1
            followed = browser.get(
                answer["click_url"],
                headers={"User-Agent": BROWSER},
                environ_base={"REMOTE_ADDR": address},
            )
            # A click link while the impression counted; past the budget, the
            # story itself (another uncounted impression for a cookie-less browser).
            if "/c/" in answer["click_url"]:
                assert followed.status_code == 303
                done["click_links"] += 1
            else:
                assert followed.status_code == 200
                done["story_links"] += 1
    return done


def run_attack(app, service, redis_client, baseline: dict, rounds: int = 600) -> dict:
    """The attack on a test with ``baseline`` counts: what it did and what it counted."""
    service.create(Definition(slug=SLUG, title="T", headlines=HEADLINES, body=("Text.",)))
    redis_client.hset(keys.counts(SLUG), mapping=baseline)
    service.fresh_all()
    service._rng = np.random.default_rng(7)  # the bandit's draws, repeatable
    before = counts(service)
    done = attack(app, rounds)
    after = counts(service)
    figures = {
        "done": done,
        "impressions": sum(after[0]) - sum(before[0]),
        "clicks": sum(after[1]) - sum(before[1]),
        "before": before,
        "after": after,
        "p_before": prob_best(*before),
        "p_after": prob_best(*after),
    }
    shown, clicked = after
    print(
        f"\nattack {done}: counted {figures['impressions']} impressions "
        f"({figures['impressions'] / sum(shown):.1%} of all) and {figures['clicks']} clicks "
        f"({figures['clicks'] / sum(clicked):.1%} of all); A's CTR "
        f"{before[1][0] / before[0][0]:.2%} -> {clicked[0] / shown[0]:.2%}, "
        f"P(best) {figures['p_before'][0]:.3f} -> {figures['p_after'][0]:.3f}"
    )
    return figures


def rate_limited(service, kind: str) -> int:
    excluded = service.store.excluded([SLUG])[SLUG]
    return sum(excluded.get(f"{kind}:rate-limited:{v}", 0) for v in "abc")


def test_one_client_cannot_pick_the_winner(app, service, redis_client, settings):
    figures = run_attack(app, service, redis_client, UNDERDOG)
    done = figures["done"]
    assert figures["impressions"] == settings.budget_impressions
    assert figures["clicks"] <= min(done["click_links"], settings.budget_clicks)
    # Everything past the budget was served, uncounted, and tallied as rate-limited:
    # each visit past it, and each story the attacker then opened without a cookie.
    visits = done["visits"] + done["story_links"]
    assert rate_limited(service, "i") == visits - settings.budget_impressions
    # A stays the underdog the honest readers made it.
    assert figures["p_after"][0] < 0.05


def test_one_client_counts_no_more_clicks_than_its_budget(app, service, redis_client, settings):
    figures = run_attack(app, service, redis_client, YOUNG)
    done = figures["done"]
    assert done["click_links"] > settings.budget_clicks  # the attacker had more to give
    assert figures["impressions"] == settings.budget_impressions
    assert figures["clicks"] == settings.budget_clicks
    assert rate_limited(service, "c") == done["click_links"] - settings.budget_clicks


def test_fifty_readers_behind_one_address_are_all_counted(app, service, settings):
    second = Definition(slug="second", title="Second", headlines=("One", "Two"), body=("T.",))
    service.create(second)
    service.fresh_all()
    clicked = 0
    for number in range(50):
        browser = app.test_client()
        page = browser.get(
            "/", headers={"User-Agent": BROWSER}, environ_base={"REMOTE_ADDR": OFFICE}
        )
        links = teasers(page.data)
        assert len(links) == 2 and all("/c/" in link for link, _ in links)
        if number % 5 < 2:  # two in five click, on one story or the other
            link, _ = links[number % 2]
            response = browser.get(
                link, headers={"User-Agent": BROWSER}, environ_base={"REMOTE_ADDR": OFFICE}
            )
            assert response.status_code == 303
            clicked += 1
    for slug in (second.slug, "colombia-china"):
        experiment = service.store.get(slug)
        assert sum(experiment.impressions) == 50
    total_clicks = sum(sum(service.store.get(s).clicks) for s in (second.slug, "colombia-china"))
    assert total_clicks == clicked == 20
