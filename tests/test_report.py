"""abtest.report: the typed report's answers, and its JSON at the edges."""

from __future__ import annotations

import json
import math

import pytest

from abtest.report import ExperimentReport, Report
from abtest.stats import build_report


def named(report: Report) -> ExperimentReport:
    ids = tuple("abc"[: len(report.variants)])
    return ExperimentReport(
        slug="story",
        title="A story",
        status="running",
        winner=None,
        created_at=1_700_000_000.0,
        variant_ids=ids,
        headlines=tuple(f"Headline {i}" for i in ids),
        stats=report,
    )


def test_totals_level_and_pairs():
    report = build_report([2000, 2100, 1900], [100, 140, 70], forecast=False)
    assert (report.impressions, report.clicks) == (6000, 310)
    assert report.ctr == pytest.approx(310 / 6000)
    assert report.level == 95
    for i in range(3):
        for j in range(3):
            if i != j:
                test = report.pair(i, j)
                assert (test.a, test.b) == (min(i, j), max(i, j))


def test_beats_and_wins_follow_the_holm_adjusted_tests():
    # statsmodels (test_stats.THREE_VARIANT_PAIRS): Holm p 0.046 (A-B), 0.046 (A-C), 7e-5 (B-C).
    report = build_report([2000, 2100, 1900], [100, 140, 70], forecast=False)
    assert report.beats(1, 0) and report.beats(1, 2) and report.beats(0, 2)
    assert not report.beats(0, 1) and not report.beats(2, 1)
    assert report.wins(1) == ((0, 2), ())
    assert report.wins(2) == ((), (0, 1))


def test_leader_and_proven_winner():
    assert build_report([0, 0], [0, 0], forecast=False).leader() is None
    clear = build_report([1500, 1500, 1500], [30, 120, 35], forecast=False)
    assert clear.leader() == 1 and clear.proven_winner() == 1
    assert clear.sequential.beats(1, 0) and not clear.sequential.beats(0, 1)
    assert not clear.same()
    alike = build_report([200_000, 200_000], [4_000, 4_010], forecast=False)
    assert alike.proven_winner() is None and alike.same()


def test_loss_if_not_best_is_the_expected_loss_given_not_best():
    report = build_report([1000, 1000, 1200], [30, 40, 45], forecast=False)
    for variant in report.variants:
        assert variant.loss_if_not_best == pytest.approx(
            variant.expected_loss / (1 - variant.prob_best)
        )
    certain = build_report([10**6, 10**6], [10**5, 5 * 10**4], forecast=False)
    assert certain.variants[0].prob_best == 1.0 and certain.variants[0].loss_if_not_best is None


def test_the_experiment_document_names_variants_and_round_trips():
    report = named(build_report([1500, 1500, 1500], [30, 120, 35]))
    document = report.to_json()
    assert list(document)[:5] == ["experiment", "title", "status", "winner", "created_at"]
    assert list(document["variants"][0])[:3] == ["id", "headline", "impressions"]
    assert document["tests"]["sequential"]["call"] == {"winner": "b", "proven": True}
    assert document["decision"]["leader"] == "b"
    text = json.dumps(document, allow_nan=False)
    again = ExperimentReport.from_json(json.loads(text))
    assert again == report


def test_an_unbounded_loss_is_null_in_json():
    report = build_report([10, 10], [1, 2], forecast=False)
    document = report.to_json()
    for value in (document["decision"]["expected_loss"], document["decision"]["threshold"]):
        assert math.isfinite(value)
    json.dumps(document, allow_nan=False)
