"""From a stats report to what an editor reads: formatted numbers and verdicts.

Pure functions over the stats document (``Service.report``) and audit
entries; the templates only lay out what these return.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from abtest import verdicts

from . import charts

__all__ = [
    "percent",
    "probability",
    "loss_per_thousand",
    "count",
    "age",
    "utc",
    "variant_rows",
    "tests_view",
    "verdict_view",
    "audit_rows",
    "listing_row",
]

DASH = "—"
ACTIONS = {
    "decide": "Chose the winner",
    "pause": "Paused",
    "resume": "Resumed",
    "reopen": "Reopened",
}


def percent(value: float | None, decimals: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value * 100:.{decimals}f}%"


def probability(value: float | None) -> str:
    """P(best) as editors read it: a percentage, never a false 0% or 100%."""
    if value is None:
        return DASH
    if value >= 0.999:
        return "> 99.9%"
    if value <= 0.001:
        return "< 0.1%"
    if value >= 0.995 or value <= 0.005:
        return f"{value * 100:.1f}%"
    return f"{value * 100:.0f}%"


def loss_per_thousand(value: float | None) -> str:
    """Expected loss in clicks per 1,000 readers."""
    if value is None:
        return DASH
    per_thousand = value * 1000
    if per_thousand < 0.05:
        return "< 0.1"
    if per_thousand < 10:
        return f"{per_thousand:.1f}"
    return f"{per_thousand:.0f}"


def count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "just now" if seconds < 10 else f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours and days < 7 else f"{days} {unit}"


def utc(timestamp: float, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%d %b %Y %H:%M:%S UTC" if seconds else "%d %b %Y %H:%M UTC")


def clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%H:%M:%S UTC")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds")


def _note(test: dict) -> str | None:
    """Why a test has no result, for editors (the stats note is {"code", "message"} or None)."""
    note = test.get("note")
    return note["message"] if note else None


def variant_rows(report: dict) -> list[dict]:
    """One row per headline for the table."""
    leader = verdicts.leader(report)
    rows = []
    for index, row in enumerate(report["variants"]):
        ci = row.get("ctr_ci") or [None, None]
        prob_best = row.get("prob_best")
        rows.append(
            {
                "index": index,
                "id": row["id"],
                "label": verdicts.label(row["id"]),
                "headline": row["headline"],
                "swatch": charts.swatch(index),
                "impressions": count(row["impressions"]),
                "clicks": count(row["clicks"]),
                "ctr": percent(row["ctr"]) if row["impressions"] else DASH,
                "ctr_low": percent(ci[0]) if row["impressions"] else None,
                "ctr_high": percent(ci[1]) if row["impressions"] else None,
                "allocation": percent(row.get("allocation"), 1)
                if row.get("allocation") is not None
                else DASH,
                "prob_best": probability(prob_best),
                "prob_best_bar": round(56 * prob_best, 1) if prob_best is not None else 0,
                "loss": loss_per_thousand(row.get("expected_loss")),
                "leader": index == leader and report.get("status") != "decided",
                "winner": report.get("status") == "decided" and row["id"] == report.get("winner"),
            }
        )
    return rows


def verdict_view(report: dict) -> dict:
    """The headline verdict, and how settled it is (for its colour)."""
    text = verdicts.overall(report)
    rows = report["variants"]
    if report.get("status") == "decided":
        kind = "decided"
    elif not any(row["clicks"] for row in rows):
        kind = "waiting"
    else:
        leader = verdicts.leader(report)
        beaten, open_ = verdicts.wins(report, leader) if leader is not None else ([], [""])
        kind = "significant" if beaten and not open_ else "open"
    return {"text": text, "kind": kind, "chi_square": verdicts.chi_square(report)}


def tests_view(report: dict) -> dict:
    chi = report["tests"]["chi_square"]
    ids = [row["id"] for row in report["variants"]]
    pairs = []
    for pair in report["tests"]["pairwise"]:
        diff = pair.get("diff")
        pairs.append(
            {
                "pair": f"{verdicts.label(ids[pair['a']])} vs {verdicts.label(ids[pair['b']])}",
                "diff": DASH if diff is None else f"{diff * 100:+.2f} pp",
                "z": DASH if pair.get("z") is None else f"{pair['z']:+.2f}",
                "p": verdicts.format_p(pair.get("p_value")),
                "p_holm": verdicts.format_p(pair.get("p_holm")),
                "verdict": verdicts.pairwise(report, pair),
                "note": _note(pair),
                "significant": pair.get("p_holm") is not None
                and pair["p_holm"] < report.get("alpha", 0.05),
            }
        )
    return {
        "alpha": report.get("alpha", 0.05),
        "level": verdicts.confidence_level(report),
        "chi": {
            "statistic": DASH if chi.get("statistic") is None else f"{chi['statistic']:.2f}",
            "dof": DASH if chi.get("dof") is None else chi["dof"],
            "p": verdicts.format_p(chi.get("p_value")),
            "verdict": verdicts.chi_square(report),
            "note": _note(chi),
        },
        "pairs": pairs,
    }


def audit_rows(entries: list[dict]) -> list[dict]:
    """Audit entries, newest first, with the stats at that moment in words."""
    rows = []
    for entry in entries:
        stats = entry.get("stats") or {}
        action = ACTIONS.get(entry.get("action"), str(entry.get("action", "")).capitalize())
        if entry.get("action") == "decide" and entry.get("winner"):
            action = f"Chose {verdicts.label(entry['winner'])} as the winner"
        snapshot = []
        for row in stats.get("variants", []):
            snapshot.append(
                {
                    "label": verdicts.label(row.get("id", "?")),
                    "impressions": count(row.get("impressions")),
                    "clicks": count(row.get("clicks")),
                    "ctr": percent(row.get("ctr")) if row.get("impressions") else DASH,
                    "prob_best": probability(row.get("prob_best")),
                }
            )
        try:
            verdict_then = verdicts.overall(stats) if stats.get("variants") else None
        except (KeyError, TypeError, IndexError):
            verdict_then = None
        rows.append(
            {
                "when": utc(entry.get("at", 0), seconds=True),
                "iso": iso(entry.get("at", 0)),
                "editor": entry.get("editor", DASH),
                "action": action,
                "change": f"{entry.get('from', '?')} → {entry.get('status', '?')}",
                "snapshot": snapshot,
                "verdict": verdict_then,
            }
        )
    return rows


def listing_row(report: dict, now: float) -> dict:
    """One experiment on the list page."""
    rows = report["variants"]
    decided = report.get("status") == "decided" and report.get("winner")
    index = (
        [row["id"] for row in rows].index(report["winner"]) if decided else verdicts.leader(report)
    )
    lead = rows[index] if index is not None else None
    return {
        "slug": report["experiment"],
        "title": report.get("title") or report["experiment"],
        "status": report["status"],
        "variants": len(rows),
        "lead_label": verdicts.label(lead["id"]) if lead else None,
        "lead_headline": lead["headline"] if lead else None,
        "lead_is_winner": bool(decided),
        "lead_prob_best": probability(lead.get("prob_best")) if lead else DASH,
        "impressions": count(sum(row["impressions"] for row in rows)),
        "clicks": count(sum(row["clicks"] for row in rows)),
        "age": age(now - report.get("created_at", now)),
        "started": utc(report.get("created_at", now)),
        "verdict": verdict_view(report),
    }
