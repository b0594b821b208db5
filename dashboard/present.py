"""Formatting for the templates: numbers, times and rows from a typed report.

The sentences come from :mod:`abtest.verdicts` (the one module that puts a
report into words) and the answers (who leads, who is proven better) from
:class:`abtest.report.Report`; this module lays them out as strings and
dicts the templates print.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

from abtest import verdicts
from abtest.model import CLICK, CLICKS, DECIDED, QUALITY, SEEN, SERVED, WINNER
from abtest.report import ExperimentReport, Signals
from abtest.webhooks import EVENT_NAMES

from . import charts

__all__ = [
    "DASH",
    "percent",
    "probability",
    "loss_per_thousand",
    "count",
    "ago",
    "utc",
    "clock",
    "iso",
    "variant_rows",
    "table_totals",
    "excluded_text",
    "measures_text",
    "measure_choices",
    "settings_change",
    "seen_view",
    "share",
    "verdict_view",
    "tests_view",
    "audit_rows",
    "listing_row",
    "ALLOCATION_CHOICES",
    "allocation_name",
    "caring_percent",
    "parse_percent",
]

DASH = "—"
ACTIONS = {
    "decide": "Chose the winner",
    "pause": "Paused",
    "resume": "Resumed",
    "reopen": "Reopened",
    "settings": "Changed the settings",
    "create": "Created",
    "start": "Started",
    "schedule": "Scheduled",
    "unschedule": "Unscheduled",
    "edit": "Edited the text",
    "archive": "Archived",
    "unarchive": "Unarchived",
    "move": "Moved on the front page",
}

#: The allocation modes as editors choose between them: (mode, name, the trade
#: in numbers).  The figures are docs/decisions.md's, "Power, regret and loss
#: at the stop": CTRs (1.5, 1.7, 2.0)%, 500 runs of 200,000 readers
#: (`abtest simulate --ctr 1.5,1.7,2.0 --readers 200000 --runs 500 --seed 1`).
ALLOCATION_CHOICES = (
    (
        CLICKS,
        "Maximize clicks",
        "Most readers get the headline that leads so far: within a few clicks of the best "
        "possible (about 63 clicks lost per 200,000 readers in our simulations), but the "
        "other headlines get so few readers that a proven call by 200,000 readers comes "
        "in under 1% of tests.",
    ),
    (
        WINNER,
        "Find the winner",
        "Half the readers get the leader, half its closest rivals: a proven call by "
        "200,000 readers in about 32% of tests instead of under 1% (by 100,000: about 9% "
        "instead of 0%), for about 280 more clicks lost per 200,000 readers "
        "(1.4 per 1,000).",
    ),
)
_ALLOCATION_NAMES = {mode: name for mode, name, _ in ALLOCATION_CHOICES}


#: What each reward counts, as a sentence says it ("Counting clicks per reader served").
REWARD_WORDS = {CLICK: "clicks", QUALITY: "quality clicks"}
#: Each reward's rate, as a column names it.
RATE_WORDS = {CLICK: "click rate", QUALITY: "quality-click rate"}
#: Whom each denominator counts, as a rate's unit says it ("per reader served").
DENOMINATOR_WORDS = {SERVED: "per reader served", SEEN: "per reader who saw it"}


def measures_text(reward: str, denominator: str) -> str:
    """The reward and the denominator the verdict uses, as words to follow "Counting":
    "clicks per reader served", "quality clicks per reader who saw it"."""
    return f"{REWARD_WORDS.get(reward, reward)} {DENOMINATOR_WORDS.get(denominator, denominator)}"


def measure_choices(quality_seconds: float) -> dict[str, tuple[tuple[str, str, str], ...]]:
    """The reward and the denominator as editors choose between them: per field,
    (value, name, what it means in one line)."""
    return {
        "reward": (
            (
                CLICK,
                "Every click",
                "Every counted click is a response: the most data, so the quickest verdict.",
            ),
            (
                QUALITY,
                "Quality clicks",
                f"Only clicks followed by {quality_seconds:g} seconds of reading on the story "
                "page: rewards headlines whose story delivers, with fewer responses to learn "
                "from.",
            ),
        ),
        "denominator": (
            (
                SERVED,
                "Every reader served",
                "Every reader the headline was served to counts, whether they saw it or not: "
                "works on any page.",
            ),
            (
                SEEN,
                "Readers who saw it",
                "Only readers who had half the headline's slot in view for a second: fair to "
                "a headline whose slot sits below the fold. Needs pages that report it (the "
                "snippet, /abtest.js, or abtest's own pages).",
            ),
        ),
    }


def settings_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What a change of settings did, for the message after saving: each setting
    that changed, then what follows from it.  ``before`` and ``after`` hold
    ``allocation``, ``caring``, ``reward`` and ``denominator``."""
    changed = []
    if before["allocation"] != after["allocation"]:
        changed.append(
            f"{allocation_name(after['allocation']).lower()} "
            f"(was: {allocation_name(before['allocation']).lower()})"
        )
    if before["caring"] != after["caring"]:
        changed.append(
            f"safe to stop below {caring_percent(after['caring'])}% of the leader's clicks "
            f"(was: {caring_percent(before['caring'])}%)"
        )
    measures = ("reward", "denominator")
    if any(before[key] != after[key] for key in measures):
        changed.append(
            f"counting {measures_text(after['reward'], after['denominator'])} "
            f"(was: {measures_text(before['reward'], before['denominator'])})"
        )
    words = "Settings changed: " + "; ".join(changed) + "."
    if before["allocation"] != after["allocation"] or before["caring"] != after["caring"]:
        words += " New readers are allocated this way from now on."
    if any(before[key] != after[key] for key in measures):
        words += (
            " Every count was kept, so the statistics and the verdict now read the whole "
            "test this way."
        )
    return words


def allocation_name(mode: str) -> str:
    """A mode as editors read it: "Maximize clicks" or "Find the winner"."""
    return _ALLOCATION_NAMES.get(mode, mode)


def caring_percent(caring: float) -> str:
    """The threshold of caring as the form shows it: 0.02 -> "2", 0.005 -> "0.5"."""
    return f"{caring * 100:.6g}"


def parse_percent(text: str) -> float | None:
    """A percentage typed in a form ("2", "0.5", "2 %", "0,5") as a share; None if not a number."""
    cleaned = text.strip().removesuffix("%").strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value / 100 if math.isfinite(value) else None


def percent(value: float | None, decimals: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:.{decimals}f}%"


def probability(value: float | None) -> str:
    return DASH if value is None else verdicts.probability(value)


def loss_per_thousand(value: float | None) -> str:
    """A loss in clicks per 1,000 readers."""
    return DASH if value is None else verdicts.clicks_per_thousand(value)


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


#: How long ago, in words: (seconds under which a wording applies, its unit in
#: seconds, singular, plural).  The browser's copy is ``ago`` in
#: static/dashboard.js; both are held to the same table in the tests.
_AGO = (
    (60, None, "just now", "just now"),
    (3600, 60, "1 minute ago", "{} minutes ago"),
    (86400, 3600, "1 hour ago", "{} hours ago"),
    (2 * 86400, None, "yesterday", "yesterday"),
    (7 * 86400, 86400, "", "{} days ago"),
    (60 * 86400, 7 * 86400, "1 week ago", "{} weeks ago"),
    (365 * 86400, 30 * 86400, "", "{} months ago"),
    (math.inf, 365 * 86400, "1 year ago", "{} years ago"),
)


def ago(seconds: float) -> str:
    """How long ago something happened, as people say it: "just now", "1 minute ago",
    "2 hours ago", "yesterday", "3 days ago", "2 weeks ago", "5 months ago", "1 year ago".

    Whole units, rounded down; a moment in the future (another server's clock
    a little ahead) is "just now".
    """
    seconds = max(0.0, seconds) if math.isfinite(seconds) else 0.0
    for below, unit, one, many in _AGO:
        if seconds < below:
            number = 1 if unit is None else int(seconds // unit)
            return one if number == 1 else many.format(number)
    raise AssertionError("unreachable: the last wording has no upper bound")


def utc(timestamp: float, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%d %b %Y %H:%M:%S UTC" if seconds else "%d %b %Y %H:%M UTC")


def clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%H:%M:%S UTC")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


#: The reasons a reader is not counted, as the table names them (singular, plural).
EXCLUSION_WORDS = {
    "bot": ("bot", "bots"),
    "prefetch": ("prefetch", "prefetches"),
    "rate-limited": ("rate-limited", "rate-limited"),
}


def excluded_text(counts: list[tuple[str, int]]) -> str | None:
    """``[("bot", 3), ("prefetch", 0), ("rate-limited", 120)]`` -> "3 bots · 120 rate-limited"
    (None when all are zero)."""
    parts = [f"{n:,} {EXCLUSION_WORDS[reason][n != 1]}" for reason, n in counts if n]
    return " · ".join(parts) or None


def share(value: float | None) -> str:
    """A share of readers as a sentence says it: "31%", "4.5%" (tenths below 10%)."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:.0f}%" if value >= 0.0995 else f"{value * 100:.1f}%"


def _signals(report: ExperimentReport) -> Signals:
    """The report's signals; for a report without them, served impressions and
    every click as the statistics counted them, nothing seen or quality."""
    if report.signals is not None:
        return report.signals
    stats = report.stats
    zeros = (0,) * len(stats.variants)
    return Signals(
        reward=CLICK,
        denominator=SERVED,
        served=tuple(v.impressions for v in stats.variants),
        seen=zeros,
        clicks=tuple(v.clicks for v in stats.variants),
        quality=zeros,
    )


def variant_rows(report: ExperimentReport) -> list[dict[str, Any]]:
    """One row per headline for the table; the interval is the anytime-valid one.

    ``impressions``, ``clicks`` and ``ctr`` are the ones the statistics use;
    ``served``, ``seen`` (with ``seen_share``), ``all_clicks`` and
    ``quality_clicks`` every count kept, and ``click_rate`` and
    ``quality_rate`` both rates over the denominator in use.  ``excluded``
    and ``excluded_clicks`` say which of the headline's readers were served
    but not counted (bots, prefetches, addresses past their budget), or are
    None when none were.
    """
    stats = report.stats
    signals = _signals(report)
    leader = stats.leader()
    decided = report.status == DECIDED
    rows = []
    for index, (variant, headline) in enumerate(zip(stats.variants, report.headlines, strict=True)):
        seen = variant.impressions > 0
        low, high = stats.sequential.cs[index]
        reasons = report.excluded[index].by_reason()
        rows.append(
            {
                "index": index,
                "id": report.variant_ids[index],
                "label": report.label(index),
                "headline": headline,
                "swatch": charts.swatch(index),
                "impressions": count(variant.impressions),
                "clicks": count(variant.clicks),
                "served": count(signals.served[index]),
                "seen": count(signals.seen[index]),
                "seen_share": share(signals.seen_share(index)),
                "all_clicks": count(signals.clicks[index]),
                "quality_clicks": count(signals.quality[index]),
                "click_rate": percent(signals.rate(index, quality=False)),
                "quality_rate": percent(signals.rate(index, quality=True)),
                "ctr": percent(variant.ctr) if seen else DASH,
                "ctr_low": percent(low) if seen else None,
                "ctr_high": percent(high) if seen else None,
                "allocation": percent(variant.allocation, 1),
                "prob_best": probability(variant.prob_best),
                "prob_best_bar": round(56 * variant.prob_best, 1),
                "loss": loss_per_thousand(variant.expected_loss),
                "leader": index == leader and not decided,
                "winner": decided and index == report.winner_index,
                "excluded": excluded_text([(reason, shown) for reason, shown, _ in reasons]),
                "excluded_clicks": excluded_text([(reason, n) for reason, _, n in reasons]),
                **_by_hour(report, index),
            }
        )
    return rows


def table_totals(report: ExperimentReport) -> dict[str, str]:
    """The table's last row: every headline's counts together, and both rates."""
    signals = _signals(report)
    served, seen = sum(signals.served), sum(signals.seen)
    clicks, quality = sum(signals.clicks), sum(signals.quality)
    shown = seen if signals.denominator == SEEN else served
    return {
        "served": count(served),
        "seen": count(seen),
        "seen_share": share(seen / served if served else None),
        "all_clicks": count(clicks),
        "quality_clicks": count(quality),
        "click_rate": percent(clicks / shown if shown else None),
        "quality_rate": percent(quality / shown if shown else None),
    }


def seen_view(report: ExperimentReport) -> dict[str, Any]:
    """The seen check in words: a warning per headline whose slot was seen by a
    different share of its readers than the others' (``flagged``), and whether
    seen impressions are measured at all (``measured``; ``unmeasured``: they are
    not, and the verdict counts per reader who saw the headline)."""
    signals = _signals(report)
    check = signals.check
    flagged = []
    total_served, total_seen = sum(signals.served), sum(signals.seen)
    for index, flag in enumerate(check.flagged if check.applies else ()):
        rest_served = total_served - signals.served[index]
        rest_seen = total_seen - signals.seen[index]
        if not flag or not rest_served:
            continue
        label = report.label(index)
        text = (
            f"{label}'s slot was seen by {share(signals.seen_share(index))} of the readers it "
            f"was served to, the other headlines' by {share(rest_seen / rest_served)}: a "
            "longer headline may push its slot below the fold."
        )
        if signals.denominator == SERVED:
            text += (
                f" Its {RATE_WORDS.get(signals.reward, 'rate')} per reader served is "
                "biased by where the slot sat, not by the headline; consider counting per "
                "reader who saw it."
            )
        else:
            text += (
                " The verdict counts per reader who saw the headline, which allows for where "
                "the slot sat."
            )
        flagged.append({"id": report.variant_ids[index], "label": label, "text": text})
    return {
        "measured": check.applies,
        "unmeasured": not check.applies and signals.denominator == SEEN,
        "flagged": flagged,
        "denominator": signals.denominator,
    }


def _by_hour(report: ExperimentReport, index: int) -> dict[str, Any]:
    """The CTR stratified by hour with its interval at the report's level, and which
    headline leads by hour and pooled (for the warning when they differ)."""
    stratified = report.stratified
    row = None if stratified is None else stratified.variants[index]
    if row is None or row.ctr is None or row.se is None:
        return {"by_hour": None, "by_hour_leads": False, "pooled_leads": False}
    half = NormalDist().inv_cdf(1 - report.stats.alpha / 2) * row.se
    return {
        "by_hour": f"{percent(row.ctr)} ± {percent(half)}",
        "by_hour_periods": row.periods,
        "by_hour_leads": stratified.leader == index,
        "pooled_leads": stratified.pooled_leader == index,
    }


def verdict_view(
    report: ExperimentReport, readers_per_second: float | None = None
) -> dict[str, str | None]:
    """The claim and the stop advice, and how settled the test is (for its colour)."""
    said = verdicts.verdict(report, readers_per_second)
    return {"claim": said.claim, "advice": said.advice, "kind": said.kind, "text": said.text}


def tests_view(report: ExperimentReport) -> dict[str, Any]:
    """The detail table: the anytime-valid evidence, then the fixed-sample tests for reference."""
    stats = report.stats
    sequential = stats.sequential
    chi = stats.chi_square
    pairs = []
    for test in stats.pairwise:
        evidence_ab = sequential.evidence(test.a, test.b)
        evidence_ba = sequential.evidence(test.b, test.a)
        pairs.append(
            {
                "pair": f"{report.label(test.a)} vs {report.label(test.b)}",
                "diff": DASH if test.diff is None else f"{test.diff * 100:+.2f} pp",
                "z": DASH if test.z is None else f"{test.z:+.2f}",
                "p": verdicts.format_p(test.p_value),
                "p_holm": verdicts.format_p(test.p_holm),
                "verdict": verdicts.pairwise(report, test),
                "note": test.note.message if test.note else None,
                "evidence": f"{_evidence(evidence_ab)} / {_evidence(evidence_ba)}",
                "proven": sequential.beats(test.a, test.b) or sequential.beats(test.b, test.a),
            }
        )
    return {
        "alpha": stats.alpha,
        "level": stats.level,
        "threshold": _evidence(sequential.threshold),
        "chi": {
            "statistic": DASH if chi.statistic is None else f"{chi.statistic:.2f}",
            "dof": chi.dof,
            "p": verdicts.format_p(chi.p_value),
            "verdict": verdicts.chi_square(report),
            "note": chi.note.message if chi.note else None,
        },
        "pairs": pairs,
    }


def _evidence(value: float | None) -> str:
    """An e-value: "0.31", "12", "4,500", "> 10^6"."""
    if value is None or value >= 1e6:
        return "> 10⁶"
    if value < 10:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def audit_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Audit entries, newest first, with the numbers and the verdict at that moment."""
    rows = []
    for entry in entries:
        if entry["action"] in WEBHOOK_ACTIONS:
            rows.append(_webhook_row(entry))
            continue
        action = ACTIONS.get(entry["action"], str(entry["action"]).capitalize())
        if entry["action"] == "decide" and entry["winner"]:
            action = f"Chose {entry['winner'].upper()} as the winner"
        change = f"{entry['from']} → {entry['status']}"
        if entry["action"] == "settings" and "settings" in entry:
            change = _settings_change(entry)
        elif entry["action"] in LIFECYCLE_CHANGES:
            change = LIFECYCLE_CHANGES[entry["action"]](entry)
        try:
            then = ExperimentReport.from_json(entry["stats"])
        except (KeyError, TypeError, ValueError, IndexError):
            then = None  # a document this version can't read: show the action alone
        snapshot = []
        if then is not None:
            for index, variant in enumerate(then.stats.variants):
                snapshot.append(
                    {
                        "label": then.label(index),
                        "impressions": count(variant.impressions),
                        "clicks": count(variant.clicks),
                        "ctr": percent(variant.ctr) if variant.impressions else DASH,
                        "prob_best": probability(variant.prob_best),
                    }
                )
        verdict_then = None
        if then is not None and then.stats.decision is not None:
            verdict_then = verdicts.verdict(then).claim
        rows.append(
            {
                "when": utc(entry["at"], seconds=True),
                "iso": iso(entry["at"]),
                "editor": entry["editor"],
                "action": action,
                "change": change,
                "snapshot": snapshot,
                "verdict": verdict_then,
            }
        )
    return rows


#: Audit entries abtest.webhooks writes: a story's webhook set or removed, a delivery try.
WEBHOOK_ACTIONS = ("webhook-url", "webhook")
_WEBHOOK_OUTCOMES = {"delivered": "delivered", "retrying": "will try again", "failed": "gave up"}


def _webhook_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A webhook audit entry in words.  Only the URL's host is ever kept: the rest
    of a webhook URL is its secret."""
    if entry["action"] == "webhook-url":
        action = "Set the webhook" if entry.get("host") else "Removed the webhook"
        change = f"{entry.get('host_from') or 'none'} → {entry.get('host') or 'none'}"
    else:
        event = entry.get("event")
        action = f"Webhook: {EVENT_NAMES.get(event, str(event))}"
        status = entry.get("status")
        said = f"answered {status}" if status is not None else f"no answer ({entry.get('error')})"
        outcome = _WEBHOOK_OUTCOMES.get(entry.get("outcome"), str(entry.get("outcome")))
        change = (
            f"{entry.get('host')} {said}: {outcome} "
            f"(try {entry.get('try')} of {entry.get('tries')})"
        )
    return {
        "when": utc(entry["at"], seconds=True),
        "iso": iso(entry["at"]),
        "editor": entry.get("editor", "webhooks"),
        "action": action,
        "change": change,
        "snapshot": [],
        "verdict": None,
    }


def _starts(entry: dict[str, Any]) -> str:
    return utc(entry["starts_at"]) if isinstance(entry.get("starts_at"), int | float) else "?"


#: The audit log's words for an experiment's life (abtest.service): what changed.
LIFECYCLE_CHANGES = {
    "create": lambda e: (
        f"created as {e['status']}" + (f", to start {_starts(e)}" if e.get("starts_at") else "")
    ),
    "start": lambda e: (
        "went live at its start time"
        if e["editor"] == "schedule"
        else f"{e['from']} → {e['status']}"
    ),
    "schedule": lambda e: f"{e['from']} → starts {_starts(e)}",
    "unschedule": lambda e: f"{e['from']} → {e['status']}",
    "edit": lambda e: "changed " + (", ".join(e.get("changed") or []) or "the text"),
    "archive": lambda e: f"{e['status']}, off the front page",
    "unarchive": lambda e: f"{e['status']}, back on the front page",
    "move": lambda e: f"number {e.get('position_from')} → {e.get('position')}",
}


def _settings_text(settings: dict, measures: bool = False) -> str:
    """An audit entry's settings in words: "Find the winner, stop below 2%", with
    ", counting quality clicks per reader served" when ``measures``."""
    mode = allocation_name(str(settings.get("allocation", "?")))
    caring = settings.get("caring")
    words = mode
    if isinstance(caring, int | float):
        words += f", stop below {caring_percent(caring)}%"
    if measures:
        counted = measures_text(
            str(settings.get("reward", CLICK)), str(settings.get("denominator", SERVED))
        )
        words += f", counting {counted}"
    return words


def _settings_change(entry: dict[str, Any]) -> str:
    """A settings entry's change, "before → after"; the reward and denominator
    are named only when they changed (entries from before they existed name none)."""
    before, after = entry.get("settings_from") or {}, entry.get("settings") or {}
    keys = ("reward", "denominator")
    measures = any(key in after for key in keys) and any(
        before.get(key, default) != after.get(key, default)
        for key, default in zip(keys, (CLICK, SERVED), strict=True)
    )
    return f"{_settings_text(before, measures)} → {_settings_text(after, measures)}"


def listing_row(report: ExperimentReport, now: float) -> dict[str, Any]:
    """One experiment on the list page."""
    stats = report.stats
    decided = report.status == DECIDED and report.winner is not None
    index = report.winner_index if decided else stats.leader()
    # What the numbers count, said only when it is not every click per reader served.
    signals = _signals(report)
    measures = None
    if (signals.reward, signals.denominator) != (CLICK, SERVED):
        measures = measures_text(signals.reward, signals.denominator)
    return {
        "slug": report.slug,
        "title": report.title or report.slug,
        "status": report.status,
        "variants": len(stats.variants),
        "lead_label": None if index is None else report.label(index),
        "lead_headline": None if index is None else report.headlines[index],
        "lead_is_winner": decided,
        "lead_prob_best": DASH if index is None else probability(stats.variants[index].prob_best),
        "impressions": count(stats.impressions),
        "clicks": count(stats.clicks),
        "ago": ago(now - report.created_at),
        "created_at": report.created_at,
        "created_iso": iso(report.created_at),
        "started": utc(report.created_at),
        "verdict": verdict_view(report),
        "measures": measures,
    }
