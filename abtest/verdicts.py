"""Plain-words verdicts from a stats report, for editors (dashboard and CLI).

The words follow the numbers strictly: "better" only where the Holm-adjusted
pairwise test is significant at the report's alpha, "leads" otherwise.
"""

from __future__ import annotations

__all__ = [
    "label",
    "leader",
    "wins",
    "overall",
    "pairwise",
    "chi_square",
    "format_p",
    "confidence_level",
    "join_words",
]


def label(variant_id: str) -> str:
    return variant_id.upper()


def format_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def confidence_level(report: dict) -> int:
    """The intervals' level in percent: 95 for alpha = 0.05."""
    return round(100 * (1 - report.get("alpha", 0.05)))


def join_words(words: list[str]) -> str:
    """ "A", "A and B", "A, B and C": :func:`abtest.stats.join_words`."""
    # Imported here, not at the top: abtest.stats brings scipy, which the app
    # and the CLI load with the first report, not when they start
    # (docs/performance.md).  Every caller has a report by then.
    from . import stats

    return stats.join_words(words)


def leader(report: dict) -> int | None:
    """Index of the variant most likely best, or None before any impressions."""
    rows = report["variants"]
    if not any(row["impressions"] for row in rows):
        return None
    scored = [(row["prob_best"], row["ctr"] or 0.0, -i) for i, row in enumerate(rows)]
    return -max(scored)[2]


def _ids(report: dict) -> list[str]:
    return [row.get("id") or chr(ord("a") + i) for i, row in enumerate(report["variants"])]


def wins(report: dict, index: int) -> tuple[list[tuple[str, float]], list[str]]:
    """(the variants ``index`` beats significantly, each with its Holm p; those it doesn't yet).

    Variants are named by :func:`label`.
    """
    alpha = report.get("alpha", 0.05)
    ids = _ids(report)
    beaten, open_ = [], []
    for pair in report["tests"]["pairwise"]:
        if index not in (pair["a"], pair["b"]):
            continue
        other = pair["b"] if pair["a"] == index else pair["a"]
        diff = pair["diff"]
        ahead = diff is not None and (diff < 0 if pair["a"] == index else diff > 0)
        if pair["p_holm"] is not None and pair["p_holm"] < alpha and ahead:
            beaten.append((label(ids[other]), pair["p_holm"]))
        else:
            open_.append(label(ids[other]))
    return beaten, open_


def overall(report: dict) -> str:
    """One sentence: who leads, and whether that is significant."""
    rows = report["variants"]
    if report.get("status") == "decided" and report.get("winner"):
        return f"Decided: {label(report['winner'])} is the winner."
    best = leader(report)
    if best is None:
        return "No readers yet."
    if not any(row["clicks"] for row in rows):
        return "No clicks yet; too early to tell."
    name = label(_ids(report)[best])
    beaten, open_ = wins(report, best)
    if not beaten:
        return f"{name} leads; not yet significant."
    better = (
        f"{name} is better than {join_words([b for b, _ in beaten])} "
        f"(p = {format_p(max(p for _, p in beaten))}, Holm)"
    )
    if not open_:
        return f"{better}."
    return f"{better}; not yet distinguishable from {join_words(open_)}."


def chi_square(report: dict) -> str:
    test = report["tests"]["chi_square"]
    alpha = report.get("alpha", 0.05)
    if test["p_value"] is None:
        return (
            "Not computable yet: "
            + ((test.get("note") or {}).get("message") or "too little data")
            + "."
        )
    if test["p_value"] < alpha:
        return f"The headlines differ (p = {format_p(test['p_value'])})."
    return f"No evidence yet that the headlines differ (p = {format_p(test['p_value'])})."


def pairwise(report: dict, pair: dict) -> str:
    ids = _ids(report)
    a, b = label(ids[pair["a"]]), label(ids[pair["b"]])
    if pair["p_holm"] is None:
        return f"{a} vs {b}: not computable yet."
    alpha = report.get("alpha", 0.05)
    high, low = (b, a) if pair["diff"] > 0 else (a, b)
    if pair["p_holm"] < alpha:
        return f"{high} is better than {low} (p = {format_p(pair['p_holm'])}, Holm)."
    if pair["diff"] == 0:
        return f"{a} and {b} are level."
    return f"{high} is ahead of {low}, not significant (p = {format_p(pair['p_holm'])}, Holm)."
