"""abtest.dashboard.present: what the templates print, from a typed report."""

from __future__ import annotations

import dataclasses

import pytest

from abtest.dashboard import present
from abtest.model import DECIDED, RUNNING
from abtest.report import Excluded, ExperimentReport, SeenCheck, Signals
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


# -- seen impressions and quality clicks ------------------------------------------


def with_signals(served, seen, clicks, quality, reward="click", denominator="served", check=None):
    """A report whose statistics count ``reward`` per ``denominator`` of these counts."""
    shown = seen if denominator == "seen" else served
    used = quality if reward == "quality" else clicks
    report = experiment(list(shown), list(used))
    signals = Signals(reward, denominator, served, seen, clicks, quality, check or SeenCheck())
    return dataclasses.replace(report, signals=signals)


def test_rows_show_every_count_and_both_rates_over_the_denominator_in_use():
    report = with_signals((400, 500), (200, 100), (20, 30), (8, 5), "quality", "seen")
    a, b = present.variant_rows(report)
    assert (a["served"], a["seen"], a["seen_share"]) == ("400", "200", "50%")
    assert (a["all_clicks"], a["quality_clicks"]) == ("20", "8")
    # Per reader who saw it: 20 / 200 and 8 / 200; B: 30 / 100 and 5 / 100.
    assert (a["click_rate"], a["quality_rate"]) == ("10.00%", "4.00%")
    assert (b["click_rate"], b["quality_rate"]) == ("30.00%", "5.00%")
    # What the statistics use: quality clicks per reader who saw it.
    assert (a["impressions"], a["clicks"], a["ctr"]) == ("200", "8", "4.00%")
    totals = present.table_totals(report)
    assert totals == {
        "served": "900",
        "seen": "300",
        "seen_share": "33%",
        "all_clicks": "50",
        "quality_clicks": "13",
        "click_rate": "16.67%",  # 50 / 300
        "quality_rate": "4.33%",  # 13 / 300
    }
    # A report without signals (stored before them): served impressions, every click.
    (plain, _) = present.variant_rows(experiment([40, 50], [4, 5]))
    assert (plain["served"], plain["click_rate"], plain["quality_rate"]) == (
        "40",
        "10.00%",
        "0.00%",
    )


@pytest.mark.parametrize(
    ("reward", "denominator", "words"),
    [
        ("click", "served", "clicks per reader served"),
        ("quality", "served", "quality clicks per reader served"),
        ("click", "seen", "clicks per reader who saw it"),
        ("quality", "seen", "quality clicks per reader who saw it"),
    ],
)
def test_the_measures_in_words(reward, denominator, words):
    assert present.measures_text(reward, denominator) == words


def test_shares_read_as_a_sentence_says_them():
    assert [present.share(v) for v in (0.31, 0.5249, 0.045, 0.0996, 1.0, None)] == [
        "31%",
        "52%",
        "4.5%",
        "10%",
        "100%",
        present.DASH,
    ]


def test_the_seen_check_warns_by_name_with_both_shares():
    check = SeenCheck(True, (False, True, False), (0.5, 1e-9, 0.5))
    # B: 310 / 1000 = 31%; A and C: (520 + 520) / 2000 = 52%.
    report = with_signals((1000,) * 3, (520, 310, 520), (30, 20, 25), (0, 0, 0), check=check)
    view = present.seen_view(report)
    assert (view["measured"], view["unmeasured"]) == (True, False)
    (flag,) = view["flagged"]
    assert (flag["id"], flag["label"]) == ("b", "B")
    assert flag["text"].startswith(
        "B's slot was seen by 31% of the readers it was served to, the other headlines' by 52%"
    )
    assert "Its click rate per reader served is biased" in flag["text"]
    quality = dataclasses.replace(
        report, signals=dataclasses.replace(report.signals, reward="quality")
    )
    assert (
        "Its quality-click rate per reader served"
        in present.seen_view(quality)["flagged"][0]["text"]
    )
    per_seen = dataclasses.replace(
        report, signals=dataclasses.replace(report.signals, denominator="seen")
    )
    assert "allows for where the slot sat" in present.seen_view(per_seen)["flagged"][0]["text"]


def test_unmeasured_seen_counts_matter_only_when_the_verdict_counts_them():
    served = with_signals((100, 100), (3, 4), (3, 4), (0, 0))
    assert present.seen_view(served) == {
        "measured": False,
        "unmeasured": False,
        "flagged": [],
        "denominator": "served",
    }
    seen = with_signals((100, 100), (3, 4), (3, 4), (0, 0), denominator="seen")
    assert present.seen_view(seen)["unmeasured"] is True


def test_a_change_of_settings_says_what_changed():
    before = {"allocation": "clicks", "caring": 0.02, "reward": "click", "denominator": "served"}
    measures = present.settings_change(before, before | {"reward": "quality"})
    assert measures == (
        "Settings changed: counting quality clicks per reader served (was: clicks per reader "
        "served). Every count was kept, so the statistics and the verdict now read the whole "
        "test this way."
    )
    caring = present.settings_change(before, before | {"caring": 0.015})
    assert caring == (
        "Settings changed: safe to stop below 1.5% of the leader's clicks (was: 2%). New "
        "readers are allocated this way from now on."
    )


def test_audit_rows_name_the_measures_only_when_they_changed():
    entry = {
        "action": "settings",
        "editor": "ed",
        "at": 1_700_000_000.0,
        "from": "running",
        "status": "running",
        "winner": None,
        "stats": experiment([10, 10], [1, 2]).to_json(),
        "settings_from": {"allocation": "clicks", "caring": 0.02},
        "settings": {"allocation": "winner", "caring": 0.02},
    }
    (row,) = present.audit_rows([entry])
    assert row["change"] == "Maximize clicks, stop below 2% → Find the winner, stop below 2%"
    entry["settings_from"] |= {"reward": "click", "denominator": "served"}
    entry["settings"] = entry["settings_from"] | {"denominator": "seen"}
    (row,) = present.audit_rows([entry])
    assert row["change"] == (
        "Maximize clicks, stop below 2%, counting clicks per reader served → Maximize clicks, "
        "stop below 2%, counting clicks per reader who saw it"
    )
