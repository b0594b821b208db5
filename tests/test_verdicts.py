"""abtest.verdicts: the words editors read, checked for what they claim.

The numbers behind the words are tested in test_stats, test_sequential and
test_decision; here the sentences must follow the numbers: "proven" only
when the proven call says so, the stop advice from the decision, no p-value
in the verdict, and no two sentences that contradict each other, over many
count vectors.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from abtest import verdicts
from abtest.model import DECIDED, RUNNING
from abtest.report import ExperimentReport
from abtest.stats import build_report

IDS = tuple("abcdefghijklmnopqrstuvwxyz")


def experiment(impressions, clicks, *, status=RUNNING, winner=None, forecast=False):
    count = len(impressions)
    return ExperimentReport(
        slug="story",
        title="A story",
        status=status,
        winner=winner,
        created_at=0.0,
        variant_ids=IDS[:count],
        headlines=tuple(f"Headline {i}" for i in range(count)),
        stats=build_report(impressions, clicks, forecast=forecast),
    )


def count_vectors(seed: int = 13, runs: int = 150):
    """A/A tests, small and large gaps, no clicks, empty headlines, 2 to 5 headlines."""
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        variants = int(rng.integers(2, 6))
        readers = int(rng.choice([0, 40, 400, 4_000, 40_000, 400_000]))
        base = float(rng.choice([0.005, 0.02, 0.1]))
        lift = float(rng.choice([0.0, 0.0, 0.05, 0.2, 0.6]))
        rates = base * (1 + lift * rng.random(variants))
        shares = rng.dirichlet(np.ones(variants) * 2)
        impressions = rng.multinomial(readers, shares)
        if rng.random() < 0.1:
            impressions[0] = 0
        clicks = rng.binomial(impressions, rates)
        yield impressions.tolist(), clicks.tolist()


PROVEN = re.compile(r"\bis proven better\b")


@pytest.mark.parametrize(("impressions", "clicks"), list(count_vectors()))
def test_the_verdict_never_contradicts_the_numbers_or_itself(impressions, clicks):
    report = experiment(impressions, clicks)
    stats = report.stats
    said = verdicts.verdict(report, readers_per_second=3.0)
    text = said.text
    winner = stats.proven_winner()

    # The claim: "proven" exactly when the proven call names a winner, and that one.
    assert bool(PROVEN.search(said.claim)) == (winner is not None)
    if winner is not None:
        assert said.claim.startswith(f"{report.label(winner)} is proven better than ")
        assert "leads" not in text and "can't yet tell" not in text
    # No p-values and no fixed-sample words in the verdict.
    assert "p =" not in text and "significan" not in text
    # The stop advice follows the decision, and never both ways at once.
    safe = "Safe to stop" in text or "any choice is safe" in text
    keep = "Keep the test running" in text
    assert not (safe and keep)
    if "any choice is safe" in text:
        assert winner is None
        assert all(v.expected_loss < stats.decision.threshold for v in stats.variants)
    elif "Safe to stop" in text:
        chosen = winner if winner is not None else stats.decision.leader
        assert stats.variants[chosen].expected_loss < stats.decision.threshold
    if keep:
        assert winner is None and not stats.decision.safe_to_stop
    if stats.clicks and winner is None and not stats.same():
        assert f"{report.label(stats.leader())} leads so far" in said.claim
    # Its kind is the same story, for the colour.
    expected = {
        "proven": winner is not None,
        "same": winner is None and stats.clicks > 0 and stats.same(),
    }
    for kind, holds in expected.items():
        assert (said.kind == kind) == holds, (kind, said)


@pytest.mark.parametrize(("impressions", "clicks"), list(count_vectors(seed=29, runs=60)))
def test_choosing_a_headline_is_described_consistently(impressions, clicks):
    report = experiment(impressions, clicks)
    stats = report.stats
    for index in range(len(stats.variants)):
        words = verdicts.choice(report, index)
        assert words.proven == (stats.proven_winner() == index)
        assert bool(PROVEN.search(words.claim)) == words.proven or "has not proven" in words.claim
        assert words.safe == (stats.variants[index].expected_loss < stats.decision.threshold)
        assert ("safe to stop" in words.cost) == words.safe
        if words.rival is not None:
            assert report.label(index) not in words.rival.split(" ")[0]


def test_an_a_a_test_says_any_choice_is_safe_rather_than_crowning_a_winner():
    report = experiment([200_000, 200_000], [4_000, 4_010])
    said = verdicts.verdict(report)
    assert said.kind == "same"
    assert said.claim == "The headlines perform about the same; any choice is safe."
    assert said.advice.startswith("Safe to stop: whichever you choose costs at most about ")
    assert "proven" not in said.text and "leads" not in said.text


def test_a_proven_winner_is_named_with_its_cost():
    report = experiment([1500, 1500, 1500], [30, 120, 35])
    said = verdicts.verdict(report)
    assert said.kind == "proven"
    assert said.claim == "B is proven better than A and C."
    assert said.advice.startswith("Safe to stop: choosing B now costs ")


def test_keep_running_says_how_many_readers_and_how_long():
    report = experiment([3000, 3100, 2900], [60, 70, 50], forecast=True)
    forecast = report.stats.decision.readers_to_call
    assert forecast.safe_to_stop and not report.stats.decision.safe_to_stop
    said = verdicts.verdict(report, readers_per_second=2.0)
    assert said.kind == "open"
    assert said.claim == "B leads so far; the test can't yet tell which headline is best."
    more = verdicts.readers(forecast.safe_to_stop)
    duration = verdicts.duration(forecast.safe_to_stop / 2.0)
    assert said.advice == (
        f"Keep the test running: about {more} more readers (~{duration} at the current "
        "traffic) until it is likely safe to stop."
    )
    assert "at the current traffic" not in verdicts.verdict(report).advice


def test_decided_and_empty_tests():
    decided = verdicts.verdict(experiment([10, 10], [1, 2], status=DECIDED, winner="b"))
    assert (decided.claim, decided.advice, decided.kind) == (
        "Decided: B is the winner.",
        None,
        "decided",
    )
    assert verdicts.verdict(experiment([0, 0], [0, 0])).claim == "No readers yet."
    no_clicks = verdicts.verdict(experiment([50, 50], [0, 0]))
    assert no_clicks.claim == "No clicks yet; too early to tell." and no_clicks.kind == "waiting"


def test_the_decide_page_uses_both_losses_for_what_they_mean():
    # Issue #13's example: choosing B costs 0.08 clicks per 1,000 readers on
    # average, 0.57 if it isn't the best.
    report = experiment([30000] * 3, [600, 640, 570])
    words = verdicts.choice(report, 1)
    assert "If it isn't, choosing it costs about 0.57 clicks per 1,000 readers." in words.chance
    assert words.cost == (
        "Choosing it now costs about 0.08 clicks per 1,000 readers on average: safe to stop."
    )
    assert words.safe and not words.proven
    assert words.claim == "The test has not proven B better than A and C."


def test_fixed_sample_sentences_say_they_are_for_one_planned_look():
    report = experiment([2000, 2100, 1900], [100, 140, 70])
    assert verdicts.chi_square(report).startswith("The headlines differ at one planned look (p = ")
    sentences = [verdicts.pairwise(report, test) for test in report.stats.pairwise]
    assert sentences[2] == "B ahead of C at one planned look (p = < 0.001, Holm)."
    close = experiment([100, 100], [5, 6])
    assert verdicts.pairwise(close, close.stats.pairwise[0]) == (
        "B ahead of A, within chance (p = 0.756, Holm)."  # 2 (1 - Phi(0.3102))
    )


@pytest.mark.parametrize(
    ("words", "expected"),
    [([], ""), (["A"], "A"), (["A", "B"], "A and B"), (["A", "B", "C"], "A, B and C")],
)
def test_join_words(words, expected):
    assert verdicts.join_words(words) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "n/a"), (0.0004, "< 0.001"), (0.0123, "0.012"), (1.0, "1.000")],
)
def test_format_p(value, expected):
    assert verdicts.format_p(value) == expected


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(0.000001, "< 0.01"), (0.00008, "0.08"), (0.0024, "2.4"), (0.0125, "12")],
)
def test_clicks_per_thousand(rate, expected):
    assert verdicts.clicks_per_thousand(rate) == expected


def test_readers_durations_and_probabilities_in_words():
    assert [verdicts.readers(n) for n in (40, 1234, 35_499)] == ["40", "1,200", "35,000"]
    assert [verdicts.duration(s) for s in (20, 600, 7200, 3 * 86400)] == [
        "1 min",
        "10 min",
        "2 h",
        "3 days",
    ]
    assert [verdicts.probability(p) for p in (0.9999, 0.5, 0.997, 0.0001)] == [
        "> 99.9%",
        "50%",
        "99.7%",
        "< 0.1%",
    ]
