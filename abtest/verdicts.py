"""Editors' words: the one place a stats report becomes sentences (dashboard and CLI).

Two questions, answered separately and never mixed in one sentence:

* **The claim**, "is a headline proven better?", from the anytime-valid
  tests (``report.sequential``): "C is proven better than A and B" only when
  the proven call names C, whenever the editor looks and whatever the bandit
  did.  No p-value appears in it.
* **The stop advice**, "can I stop now?", from the decision
  (``report.decision``): the clicks per 1,000 readers that choosing now
  costs on average, "safe to stop" below the experiment's threshold, and when
  it is not, how many more readers it likely takes.  When every headline is
  within the threshold (an A/A test, or headlines that truly perform alike),
  it says any choice is safe rather than crowning one.

The fixed-sample tests (chi-square, Holm-adjusted z-tests) keep their own
sentences for the detail table, labelled as valid at one planned look only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import DECIDED
from .report import ExperimentReport, PairwiseTest

__all__ = [
    "Verdict",
    "Choice",
    "verdict",
    "choice",
    "chi_square",
    "pairwise",
    "format_p",
    "probability",
    "clicks_per_thousand",
    "readers",
    "duration",
    "join_words",
]


# -- numbers in words ----------------------------------------------------------


def join_words(words: Sequence[str]) -> str:
    """Words as prose lists them: "A", "A and B", "A, B and C" ("" for none)."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def format_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def clicks_per_thousand(rate: float) -> str:
    """A difference in CTR as clicks per 1,000 readers: "0.08", "2.4", "12", "< 0.01"."""
    per_thousand = rate * 1000
    if per_thousand < 0.005:
        return "< 0.01"
    if per_thousand < 1:
        return f"{per_thousand:.2f}"
    if per_thousand < 10:
        return f"{per_thousand:.1f}"
    return f"{per_thousand:.0f}"


def _cost(rate: float) -> str:
    """ "about 0.08 clicks per 1,000 readers", "less than 0.01 clicks per 1,000 readers"."""
    amount = clicks_per_thousand(rate)
    amount = "less than 0.01" if amount == "< 0.01" else f"about {amount}"
    return f"{amount} clicks per 1,000 readers"


def readers(count: int) -> str:
    """A reader count rounded as people say it: "about 1,200", "about 35,000"."""
    if count < 100:
        return f"{count:,}"
    digits = max(0, len(str(count)) - 2)
    return f"{round(count, -digits):,}"


def duration(seconds: float) -> str:
    """ "5 min", "3 h", "2 days"; at least a minute."""
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} h"
    return f"{round(seconds / 86400)} days"


# -- the verdict -------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The claim and the stop advice, and how settled the test is (for its colour).

    ``kind`` is one of ``decided``, ``waiting`` (no readers or no clicks yet),
    ``proven`` (a proven winner), ``same`` (every choice within the threshold,
    none proven), ``safe`` (the leader within it, none proven) and ``open``.
    """

    claim: str
    advice: str | None
    kind: str

    @property
    def text(self) -> str:
        return self.claim if self.advice is None else f"{self.claim} {self.advice}"


def verdict(report: ExperimentReport, readers_per_second: float | None = None) -> Verdict:
    """What the test says now, in two sentences.

    ``readers_per_second`` (the current traffic) turns "more readers" into a
    time; ``None`` leaves the time out.
    """
    stats = report.stats
    if report.status == DECIDED and report.winner is not None:
        return Verdict(f"Decided: {report.winner.upper()} is the winner.", None, "decided")
    if not stats.impressions:
        return Verdict("No readers yet.", _keep_running(report, readers_per_second), "waiting")
    if not stats.clicks:
        return Verdict(
            "No clicks yet; too early to tell.",
            _keep_running(report, readers_per_second),
            "waiting",
        )

    decision = stats.decision
    winner = stats.proven_winner()
    if winner is not None:
        others = [report.label(j) for j in range(len(stats.variants)) if j != winner]
        claim = f"{report.label(winner)} is proven better than {join_words(others)}."
        loss = stats.variants[winner].expected_loss
        if loss < decision.threshold:
            advice = f"Safe to stop: choosing {report.label(winner)} now costs {_cost(loss)}."
        else:
            advice = f"Choosing {report.label(winner)} now costs {_cost(loss)} on average."
        return Verdict(claim, advice, "proven")

    worst = max(variant.expected_loss for variant in stats.variants)
    if worst < decision.threshold:
        return Verdict(
            "The headlines perform about the same; any choice is safe.",
            f"Safe to stop: whichever you choose costs at most {_cost(worst)}.",
            "same",
        )
    leader = stats.leader()
    claim = f"{report.label(leader)} leads so far; the test can't yet tell which headline is best."
    if decision.safe_to_stop:
        advice = (
            f"Safe to stop: choosing {report.label(leader)} now costs "
            f"{_cost(decision.expected_loss)}."
        )
        return Verdict(claim, advice, "safe")
    return Verdict(claim, _keep_running(report, readers_per_second), "open")


def _keep_running(report: ExperimentReport, readers_per_second: float | None) -> str:
    """ "Keep the test running: about N more readers (~T at the current traffic) until ..."."""
    decision = report.stats.decision
    forecast = decision.readers_to_call
    if forecast is None:
        if not report.stats.clicks:
            return "Keep the test running."
        return (
            f"Keep the test running: choosing now costs {_cost(decision.expected_loss)}, "
            f"more than the {clicks_per_thousand(decision.threshold)} this test can ignore."
        )
    if forecast.safe_to_stop is None:
        return (
            f"Keep the test running, though a safe stop is unlikely within "
            f"{readers(forecast.horizon)} more readers."
        )
    more = forecast.safe_to_stop
    when = ""
    if readers_per_second and readers_per_second > 0:
        when = f" (~{duration(more / readers_per_second)} at the current traffic)"
    return (
        f"Keep the test running: about {readers(more)} more readers{when} "
        "until it is likely safe to stop."
    )


# -- choosing one headline ---------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """What the decide page says about choosing variant ``index`` now."""

    index: int
    proven: bool  # proven better than every other headline
    safe: bool  # choosing it now costs less than the threshold
    claim: str
    chance: str
    cost: str
    rival: str | None  # the headline proven better, or leading, if not this one


def choice(report: ExperimentReport, index: int) -> Choice:
    stats = report.stats
    name = report.label(index)
    variant = stats.variants[index]
    sequential, decision = stats.sequential, stats.decision
    others = [j for j in range(len(stats.variants)) if j != index]
    beaten = [report.label(j) for j in others if sequential.beats(index, j)]
    unbeaten = [report.label(j) for j in others if not sequential.beats(index, j)]
    proven = stats.proven_winner() == index
    if proven:
        claim = f"{name} is proven better than every other headline."
    else:
        claim = f"The test has not proven {name} better than {join_words(unbeaten)}"
        claim += f"; it is proven better than {join_words(beaten)}." if beaten else "."

    chance = f"There is a {probability(variant.prob_best)} chance that {name} is the best headline."
    if variant.loss_if_not_best is not None and variant.prob_best < 0.9995:
        chance += f" If it isn't, choosing it costs {_cost(variant.loss_if_not_best)}."

    safe = variant.expected_loss < decision.threshold
    cost = f"Choosing it now costs {_cost(variant.expected_loss)} on average"
    cost += (
        ": safe to stop."
        if safe
        else f", more than the {clicks_per_thousand(decision.threshold)} this test can ignore."
    )

    rival = None
    winner, leader = stats.proven_winner(), stats.leader()
    if winner is not None and winner != index:
        rival = f"{report.label(winner)} is proven better than every other headline."
    elif leader is not None and leader != index and not safe:
        rival = (
            f"{report.label(leader)} currently leads "
            f"(P(best) {probability(stats.variants[leader].prob_best)})."
        )
    return Choice(index, proven, safe, claim, chance, cost, rival)


def probability(value: float) -> str:
    """P(best) as editors read it: a percentage, never a false 0% or 100%."""
    if value >= 0.999:
        return "> 99.9%"
    if value <= 0.001:
        return "< 0.1%"
    if value >= 0.995 or value <= 0.005:
        return f"{value * 100:.1f}%"
    return f"{value * 100:.0f}%"


# -- the fixed-sample tests, for the detail table ------------------------------------


def chi_square(report: ExperimentReport) -> str:
    test = report.stats.chi_square
    if test.p_value is None:
        return f"Not computable yet: {test.note.message if test.note else 'too little data'}."
    if test.p_value < report.stats.alpha:
        return f"The headlines differ at one planned look (p = {format_p(test.p_value)})."
    return f"No difference at one planned look (p = {format_p(test.p_value)})."


def pairwise(report: ExperimentReport, test: PairwiseTest) -> str:
    a, b = report.label(test.a), report.label(test.b)
    if test.p_holm is None:
        return f"{a} vs {b}: not computable yet."
    if test.ahead is None:
        return f"{a} and {b} are level."
    high, low = (b, a) if test.ahead == test.b else (a, b)
    if test.p_holm < report.stats.alpha:
        return f"{high} ahead of {low} at one planned look (p = {format_p(test.p_holm)}, Holm)."
    return f"{high} ahead of {low}, within chance (p = {format_p(test.p_holm)}, Holm)."
