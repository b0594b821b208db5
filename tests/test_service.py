"""The use cases: assigning headlines, following clicks, the visitor cookie, reports."""

from __future__ import annotations

import os
from fractions import Fraction

import pytest
from helpers import SLUG, totals

from abtest import keys
from abtest.model import DECIDED, Definition, InvalidExperiment
from abtest.service import (
    MAX_ASSIGNMENTS,
    ActionRefused,
    InvalidLink,
    Service,
    UnknownExperiment,
)
from abtest.store import connect
from abtest.tokens import ClickToken, Visitor, visitor_ref


def test_assign_returns_a_new_visitor_and_leaves_the_one_given_alone(service):
    visitor = Visitor.new()
    served = service.assign(visitor, [SLUG], count=True)
    (assignment,) = served.assignments
    assert dict(served.visitor.assignments) == {SLUG: assignment.variant}
    assert served.visitor.id == visitor.id and dict(visitor.assignments) == {}
    assert assignment.click_token is not None
    # Back again: the same headline, the same visitor, nothing counted.
    again = service.assign(served.visitor, [SLUG], count=True)
    assert again.visitor is served.visitor
    assert again.assignments[0].variant == assignment.variant
    assert sum(totals(service)[0]) == 1
    # Not counted (a bot): the default headline, no token, no new assignment.
    bot = service.assign(visitor, [SLUG], count=False)
    assert bot.visitor is visitor
    assert bot.assignments[0].variant == "a" and bot.assignments[0].click_token is None
    with pytest.raises(UnknownExperiment):
        service.assign(visitor, ["no-such-story"], count=True)


def test_the_visitor_cookie_keeps_live_assignments_only_and_the_newest(service):
    service.create(Definition(slug="second", title="Second", headlines=("A", "B"), body=("T.",)))
    service.decide(SLUG, "a", editor="ed")
    visitor = Visitor("visitor_1", {SLUG: "b", "second": "a", "gone": "a"})
    kept = service.read_visitor(service.visitor_cookie(visitor))
    assert kept.id == "visitor_1" and dict(kept.assignments) == {"second": "a"}
    assert dict(visitor.assignments) == {SLUG: "b", "second": "a", "gone": "a"}  # untouched
    for number in range(MAX_ASSIGNMENTS + 5):
        slug = f"story-{number}"
        service.create(Definition(slug=slug, title="S", headlines=("A", "B"), body=("T.",)))
        visitor = visitor.with_assignments({slug: "b"})
    kept = service.read_visitor(service.visitor_cookie(visitor))
    assert len(kept.assignments) == MAX_ASSIGNMENTS
    assert list(kept.assignments)[-1] == f"story-{MAX_ASSIGNMENTS + 4}"  # the oldest went


def test_a_cookie_that_is_missing_or_forged_is_a_new_visitor(service):
    cookie = service.visitor_cookie(Visitor("visitor_1", {SLUG: "b"}))
    assert service.read_visitor(cookie) == Visitor("visitor_1", {SLUG: "b"})
    for bad in (None, "", cookie.replace("=b", "=c")):
        assert service.read_visitor(bad).id != "visitor_1"
        assert not service.read_visitor(bad).assignments


def test_read_click_counts_a_genuine_click_once(service):
    served = service.assign(Visitor.new(), [SLUG], count=True)
    token, cookie = served.assignments[0].click_token, service.visitor_cookie(served.visitor)
    assert service.read_click(token, cookie) == (SLUG, True)
    assert service.read_click(token, cookie) == (SLUG, False)  # once per visitor
    assert service.read_click(token, cookie, count=False) == (SLUG, False)
    assert sum(totals(service)[1]) == 1
    with pytest.raises(ActionRefused):
        service.read_click(token, None)  # another browser
    with pytest.raises(InvalidLink):
        service.read_click(token[:-2] + "AA", cookie)
    unknown = service.click_tokens.dumps(ClickToken("no-such-story", "a", visitor_ref("v")))
    with pytest.raises(UnknownExperiment):
        service.read_click(unknown, cookie)


def test_a_click_redis_cannot_take_leads_to_the_story_uncounted(service, tmp_path):
    served = service.assign(Visitor.new(), [SLUG], count=True)
    token, cookie = served.assignments[0].click_token, service.visitor_cookie(served.visitor)
    service.store.redis = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    assert service.read_click(token, cookie) == (SLUG, False)


def test_reports_follow_the_counts_and_never_share_state(service):
    first = service.report(SLUG).to_json()
    first["variants"][0]["ctr"] = "scribbled on"
    again = service.report(SLUG).to_json()
    assert again["variants"][0]["ctr"] == 0.0
    service.store.record_impressions([(SLUG, "a")])
    assert service.report(SLUG).to_json()["variants"][0]["impressions"] == 1


def test_a_forked_worker_draws_its_own_random_stream(service):
    # gunicorn forks its workers from a preloaded app: each must draw its own
    # random stream, not share the parent's.
    parent_rng = service.rng
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(write, b"1" if service.rng is not parent_rng else b"0")
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    assert service.rng is parent_rng


def test_editor_actions_follow_the_status_rules(service):
    with pytest.raises(ActionRefused):
        service.resume(SLUG, editor="ed")  # running, not paused
    assert service.decide(SLUG, "b", editor="ed").status == DECIDED
    with pytest.raises(ActionRefused):
        service.decide(SLUG, "c", editor="ed")
    with pytest.raises(ActionRefused):
        service.decide(SLUG, "z", editor="ed")
    assert [entry["action"] for entry in service.audit(SLUG)] == ["decide"]


# -- allocation modes and the threshold of caring --------------------------------------

#: A dominant leader: A at 5%, B and C at 1%, 20,000 readers each.
DOMINANT = {"i:a": 20_000, "c:a": 1_000, "i:b": 20_000, "c:b": 200, "i:c": 20_000, "c:c": 200}


def _seeded_service(redis_client, seed: int):
    import numpy as np

    from abtest.store import RedisStore
    from abtest.tokens import ClickTokens, VisitorCookies

    secret = "test-secret-key-0123456789abcdef"
    return Service(
        RedisStore(redis_client, minute_ttl=7200, hour_ttl=86_400),
        ClickTokens(secret, 3600),
        VisitorCookies(secret),
        rng=np.random.default_rng(seed),
    )


def test_find_the_winner_sends_far_more_new_readers_to_the_challengers(redis_client):
    service = _seeded_service(redis_client, seed=13)
    try:
        headlines = ("Five percent", "One percent", "Also one percent")
        for slug, allocation in (("clicks-story", "clicks"), ("winner-story", "winner")):
            definition = Definition(slug=slug, title="T", headlines=headlines, body=("T.",))
            assert service.create(definition, allocation=allocation)
            redis_client.hset(keys.counts(slug), mapping=DOMINANT)
        service.fresh_all()
        challengers = {}
        for slug in ("clicks-story", "winner-story"):
            served = [
                service.assign(Visitor.new(), [slug], count=True).assignments[0].variant
                for _ in range(400)
            ]
            challengers[slug] = sum(variant != "a" for variant in served)
        # Thompson sampling: P(B or C beats A) is about 1e-100 here, so none;
        # top-two: about half go to a challenger (Binomial(400, 1/2): 200 +- 10).
        assert challengers["clicks-story"] == 0
        assert challengers["winner-story"] > 150
        # Changed later: the next new readers are allocated by the new mode.
        service.set_settings("clicks-story", "winner", 0.02, editor="ed")
        served = [
            service.assign(Visitor.new(), ["clicks-story"], count=True).assignments[0].variant
            for _ in range(400)
        ]
        assert sum(variant != "a" for variant in served) > 150
    finally:
        service.stop()


def test_the_report_uses_the_experiments_mode_and_threshold(service, redis_client):
    definition = Definition(slug="caring", title="T", headlines=("A", "B"), body=("T.",))
    assert service.create(definition, allocation="winner", caring=0.05)
    redis_client.hset(keys.counts("caring"), mapping={"i:a": 998, "c:a": 19, "i:b": 1000})
    report = service.report("caring")
    leader_mean = Fraction(1 + 19, 2 + 998)  # A's posterior mean: Beta(20, 980)
    assert report.stats.decision.leader == 0
    assert report.stats.decision.threshold == pytest.approx(float(Fraction(5, 100) * leader_mean))
    # A new threshold is a new report (not the cached one).
    service.set_settings("caring", "winner", 0.01, editor="ed")
    again = service.report("caring").stats.decision.threshold
    assert again == pytest.approx(float(Fraction(1, 100) * leader_mean))


def test_settings_are_checked_and_audited(service):
    with pytest.raises(InvalidExperiment):
        service.create(
            Definition(slug="bad", title="T", headlines=("A", "B"), body=("T.",)), caring=1.5
        )
    assert service.store.get("bad") is None
    for allocation, caring in (("fastest", 0.02), ("winner", 0), ("winner", "lots")):
        with pytest.raises(InvalidExperiment):
            service.set_settings(SLUG, allocation, caring, editor="ed")
    with pytest.raises(ActionRefused):
        service.set_settings(SLUG, "clicks", 0.02, editor="ed")  # what it has already
    with pytest.raises(UnknownExperiment):
        service.set_settings("no-such-story", "winner", 0.02, editor="ed")
    assert service.audit(SLUG) == []
    changed = service.set_settings(SLUG, "winner", 0.03, editor="ed")
    assert (changed.allocation, changed.caring) == ("winner", 0.03)
    assert service.experiment(SLUG).allocation == "winner"  # this worker's snapshot too
    (entry,) = service.audit(SLUG)
    assert entry["action"] == "settings" and entry["editor"] == "ed"
    measures = {"reward": "click", "denominator": "served"}
    assert entry["settings_from"] == {"allocation": "clicks", "caring": 0.02, **measures}
    assert entry["settings"] == {"allocation": "winner", "caring": 0.03, **measures}
    assert entry["status"] == entry["from"] == "running"
