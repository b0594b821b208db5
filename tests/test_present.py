"""abtest.dashboard.present: what the templates print, from a typed report."""

from __future__ import annotations

import dataclasses

import pytest

from abtest.dashboard import present
from abtest.model import DECIDED, RUNNING
from abtest.report import Excluded, ExperimentReport
from abtest.stats import build_report


def experiment(impressions, clicks, status=RUNNING, winner=None):
    ids = tuple("abc"[: len(impressions)])
    return ExperimentReport(
        slug="story",
        title="A story",
        status=status,
        winner=winner,
        created_at=1_700_000_000.0,
        variant_ids=ids,
        headlines=tuple(f"Headline {i}" for i in ids),
        stats=build_report(impressions, clicks, forecast=False),
    )


@pytest.mark.parametrize(
    ("function", "value", "expected"),
    [
        (present.percent, 0.05123, "5.12%"),
        (present.percent, None, present.DASH),
        (present.percent, float("nan"), present.DASH),
        (present.probability, 0.9995, "> 99.9%"),
        (present.probability, None, present.DASH),
        (present.loss_per_thousand, 0.00234, "2.3"),
        (present.count, 12345, "12,345"),
        (present.utc, 0, "01 Jan 1970 00:00 UTC"),
        (present.iso, 0, "1970-01-01T00:00:00+00:00"),
    ],
)
def test_formats(function, value, expected):
    assert function(value) == expected


def test_rows_show_the_anytime_interval_and_the_leader():
    report = experiment([1500, 1500, 1500], [30, 120, 35])
    rows = present.variant_rows(report)
    low, high = report.stats.sequential.cs[1]
    assert (rows[1]["ctr_low"], rows[1]["ctr_high"]) == (
        present.percent(low),
        present.percent(high),
    )
    assert [row["leader"] for row in rows] == [False, True, False]
    assert rows[1]["label"] == "B" and rows[1]["ctr"] == "8.00%"
    decided = present.variant_rows(experiment([10, 10, 10], [1, 2, 3], DECIDED, "c"))
    assert [row["winner"] for row in decided] == [False, False, True]
    assert not any(row["leader"] for row in decided)


def test_the_tests_view_puts_the_evidence_first_and_labels_the_rest():
    view = present.tests_view(experiment([1500, 1500, 1500], [30, 120, 35]))
    assert view["threshold"] == "40"
    first = view["pairs"][0]
    assert first["pair"] == "A vs B" and first["proven"]
    assert first["evidence"].endswith("> 10⁶")
    assert "one planned look" in first["verdict"]


def test_audit_rows_read_the_stats_as_they_were():
    then = experiment([100, 120, 90], [3, 9, 2])
    entry = {
        "action": "decide",
        "editor": "ed",
        "at": 1_700_000_000.0,
        "from": "running",
        "status": "decided",
        "winner": "b",
        "stats": then.to_json(),
    }
    (row,) = present.audit_rows([entry])
    assert row["action"] == "Chose B as the winner"
    assert row["change"] == "running → decided"
    assert [v["label"] for v in row["snapshot"]] == ["A", "B", "C"]
    assert row["snapshot"][1]["clicks"] == "9"
    assert row["verdict"] == "B leads so far; the test can't yet tell which headline is best."
    unreadable = dict(entry, stats={"variants": "?"})
    assert present.audit_rows([unreadable])[0]["snapshot"] == []


def test_listing_row_names_the_leader_or_the_winner():
    row = present.listing_row(experiment([1500, 1500, 1500], [30, 120, 35]), 1_700_003_600.0)
    assert (row["lead_label"], row["lead_is_winner"], row["ago"]) == ("B", False, "1 hour ago")
    assert row["verdict"]["kind"] == "proven"
    decided = present.listing_row(experiment([10, 10], [1, 2], DECIDED, "a"), 1_700_000_000.0)
    assert (decided["lead_label"], decided["lead_is_winner"]) == ("A", True)
    empty = present.listing_row(experiment([0, 0], [0, 0]), 1_700_000_000.0)
    assert empty["lead_label"] is None and empty["lead_prob_best"] == present.DASH


def test_rows_say_which_readers_were_served_but_not_counted():
    report = experiment([1500, 1500], [30, 120])
    rows = present.variant_rows(report)
    assert [(row["excluded"], row["excluded_clicks"]) for row in rows] == [(None, None)] * 2
    excluded = (Excluded((3, 1, 120), (0, 0, 26)), Excluded((1, 0, 0), (1, 0, 0)))
    rows = present.variant_rows(dataclasses.replace(report, excluded=excluded))
    assert rows[0]["excluded"] == "3 bots · 1 prefetch · 120 rate-limited"
    assert rows[0]["excluded_clicks"] == "26 rate-limited"
    assert (rows[1]["excluded"], rows[1]["excluded_clicks"]) == ("1 bot", "1 bot")
    assert present.excluded_text([("bot", 1234)]) == "1,234 bots"
