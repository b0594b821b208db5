"""The stats report as a type: what :mod:`abtest.stats` computed, and the questions asked of it.

:class:`Report` is one experiment's statistics (per variant, the tests, the
notes); :class:`ExperimentReport` adds the experiment's identity (slug, title,
status, winner, variant ids and headlines), which is what the service hands
to the dashboard, the CLI and the API.  Both are frozen: a cached report is
shared, never copied.  The questions the views ask (who leads, who beats
whom, the totals) are answered here once.

JSON only at the edges: :meth:`Report.to_json` and
:meth:`ExperimentReport.to_json` give the stats document in the order of
docs/api.md (SPEC's keys first, then ``alpha`` and ``notes``), and
:meth:`ExperimentReport.from_json` reads one back (audit entries keep the
document as it was when an editor acted).

No numpy or scipy here: the dashboard imports this module when the app starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import keys
from .stratified import Stratified, VariantStratified

if TYPE_CHECKING:
    from .model import Experiment

__all__ = [
    "Note",
    "VariantStats",
    "ChiSquareTest",
    "PairwiseTest",
    "SequentialReport",
    "PairEvidence",
    "DecisionReport",
    "ReadersToCall",
    "Report",
    "ExperimentReport",
    "Excluded",
    "Signals",
    "SeenCheck",
    "EXCLUSION_REASONS",
    "variant_name",
]


#: Why a reader is served but deliberately not counted, in the document's order.
EXCLUSION_REASONS = keys.REASONS


def variant_name(index: int) -> str:
    """Variant ``index`` as editors name it: A, B, C, ..."""
    return chr(ord("A") + index)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: an unbounded number is ``None``."""
    return value if value is None or math.isfinite(value) else None


@dataclass(frozen=True)
class Note:
    """Why a number is ``None``: a stable code and a phrase for editors."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_json(cls, data: Mapping[str, str] | None) -> Note | None:
        return None if data is None else cls(data["code"], data["message"])


def _note_json(note: Note | None) -> dict[str, str] | None:
    return None if note is None else note.to_json()


@dataclass(frozen=True)
class VariantStats:
    """One headline's numbers.

    ``ctr`` is 0.0 and ``ctr_ci`` ``None`` without impressions; ``prob_best``
    and ``expected_loss`` come from the Beta(1 + clicks, 1 + non-clicks)
    posteriors and are always defined.
    """

    impressions: int
    clicks: int
    ctr: float
    ctr_ci: tuple[float, float] | None
    allocation: float
    prob_best: float
    expected_loss: float
    note: Note | None = None

    @property
    def loss_if_not_best(self) -> float | None:
        """E[max CTR - this CTR | this is not the best]; ``None`` when it surely is the best.

        The loss is zero whenever this variant is the best, so
        E[loss] = E[loss | not best] (1 - P(best)).
        """
        if self.prob_best >= 1.0:
            return None
        return self.expected_loss / (1.0 - self.prob_best)

    def to_json(self) -> dict[str, Any]:
        return {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "ctr_ci": None if self.ctr_ci is None else list(self.ctr_ci),
            "allocation": self.allocation,
            "prob_best": self.prob_best,
            "expected_loss": self.expected_loss,
            "note": _note_json(self.note),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariantStats:
        interval = data["ctr_ci"]
        return cls(
            impressions=data["impressions"],
            clicks=data["clicks"],
            ctr=data["ctr"],
            ctr_ci=None if interval is None else (interval[0], interval[1]),
            allocation=data["allocation"],
            prob_best=data["prob_best"],
            expected_loss=data["expected_loss"],
            note=Note.from_json(data["note"]),
        )


@dataclass(frozen=True)
class ChiSquareTest:
    """Pearson's test of independence on the variants x (clicks, non-clicks) table.

    ``statistic`` and ``p_value`` are ``None`` (with a ``note``) when the test
    is undefined; ``dof`` (variants - 1) is always given, as R's ``chisq.test``
    does.
    """

    statistic: float | None
    dof: int
    p_value: float | None
    note: Note | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "statistic": self.statistic,
            "dof": self.dof,
            "p_value": self.p_value,
            "note": _note_json(self.note),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChiSquareTest:
        return cls(data["statistic"], data["dof"], data["p_value"], Note.from_json(data["note"]))


@dataclass(frozen=True)
class PairwiseTest:
    """Two-sided pooled two-proportion z-test of variant ``b`` against variant ``a`` (a < b).

    ``diff`` is ``ctr_b - ctr_a`` and ``z`` has its sign.  ``diff`` is
    ``None`` only when a variant has no impressions; ``z``, ``p_value`` and
    ``p_holm`` are ``None`` (with a ``note``) whenever the test is undefined.
    """

    a: int
    b: int
    diff: float | None
    z: float | None
    p_value: float | None
    p_holm: float | None
    note: Note | None = None

    @property
    def ahead(self) -> int | None:
        """The index of the variant with the higher CTR, ``None`` when level or undefined."""
        if not self.diff:
            return None
        return self.b if self.diff > 0 else self.a

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "diff": self.diff,
            "z": self.z,
            "p_value": self.p_value,
            "p_holm": self.p_holm,
            "note": _note_json(self.note),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairwiseTest:
        return cls(
            data["a"],
            data["b"],
            data["diff"],
            data["z"],
            data["p_value"],
            data["p_holm"],
            Note.from_json(data["note"]),
        )


@dataclass(frozen=True)
class PairEvidence:
    """Anytime-valid evidence between variants ``a`` < ``b``: an e-value each way.

    An e-value is ``None`` only where it is unbounded (JSON has no infinity).
    """

    a: int
    b: int
    a_beats_b: float | None
    b_beats_a: float | None

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "a_beats_b": self.a_beats_b, "b_beats_a": self.b_beats_a}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairEvidence:
        return cls(data["a"], data["b"], data["a_beats_b"], data["b_beats_a"])


@dataclass(frozen=True)
class SequentialReport:
    """The anytime-valid tests (see :mod:`abtest.sequential`), valid at every look.

    ``cs`` is each variant's confidence sequence at level 1 - alpha / K;
    ``winner`` is the index of the variant proven better than every other
    (each of its e-values against them at least ``threshold``), else ``None``.
    """

    alpha: float
    cs: tuple[tuple[float, float], ...]
    pairs: tuple[PairEvidence, ...]
    threshold: float
    winner: int | None

    @property
    def proven(self) -> bool:
        return self.winner is not None

    def evidence(self, i: int, j: int) -> float | None:
        """The e-value that ``i`` beats ``j`` (``None``: unbounded)."""
        for pair in self.pairs:
            if (pair.a, pair.b) == (i, j):
                return pair.a_beats_b
            if (pair.a, pair.b) == (j, i):
                return pair.b_beats_a
        raise KeyError((i, j))

    def beats(self, i: int, j: int) -> bool:
        """``i`` is proven better than ``j``."""
        evidence = self.evidence(i, j)
        return evidence is None or evidence >= self.threshold

    def to_json(self, ids: tuple[str, ...] | None = None) -> dict[str, Any]:
        winner: int | str | None = self.winner
        if ids is not None and self.winner is not None:
            winner = ids[self.winner]
        return {
            "cs": [list(interval) for interval in self.cs],
            "e_values": [pair.to_json() for pair in self.pairs],
            "threshold": self.threshold,
            "call": {"winner": winner, "proven": self.proven},
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], alpha: float, ids: tuple[str, ...] | None = None
    ) -> SequentialReport:
        winner = data["call"]["winner"]
        if ids is not None and winner is not None:
            winner = ids.index(winner)
        return cls(
            alpha=alpha,
            cs=tuple((low, high) for low, high in data["cs"]),
            pairs=tuple(PairEvidence.from_json(pair) for pair in data["e_values"]),
            threshold=data["threshold"],
            winner=winner,
        )


@dataclass(frozen=True)
class ReadersToCall:
    """Estimated further readers until a proven call and until "safe to stop" is likely.

    ``None``: unlikely within ``horizon`` more readers.
    """

    proven: int | None
    safe_to_stop: int | None
    horizon: int

    def to_json(self) -> dict[str, Any]:
        return {"proven": self.proven, "safe_to_stop": self.safe_to_stop, "horizon": self.horizon}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ReadersToCall | None:
        if data is None:
            return None
        return cls(data["proven"], data["safe_to_stop"], data["horizon"])


@dataclass(frozen=True)
class DecisionReport:
    """ "Can I stop now?" (see :mod:`abtest.decision`): the cost of choosing the leader now.

    ``expected_loss`` is E[max CTR - the leader's CTR]; ``loss_if_not_best``
    the same given the leader is not the best (``None`` when it surely is);
    ``safe_to_stop`` when ``expected_loss`` is below ``threshold``.  All are
    click-through rates (clicks per reader).
    """

    leader: int | None
    expected_loss: float
    loss_if_not_best: float | None
    threshold: float
    safe_to_stop: bool
    readers_to_call: ReadersToCall | None

    def to_json(self, ids: tuple[str, ...] | None = None) -> dict[str, Any]:
        leader: int | str | None = self.leader
        if ids is not None and self.leader is not None:
            leader = ids[self.leader]
        return {
            "leader": leader,
            "expected_loss": self.expected_loss,
            "loss_if_not_best": _finite(self.loss_if_not_best),
            "safe_to_stop": self.safe_to_stop,
            "threshold": self.threshold,
            "readers_to_call": None
            if self.readers_to_call is None
            else self.readers_to_call.to_json(),
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], ids: tuple[str, ...] | None = None
    ) -> DecisionReport:
        leader = data["leader"]
        if ids is not None and leader is not None:
            leader = ids.index(leader)
        return cls(
            leader=leader,
            expected_loss=data["expected_loss"],
            loss_if_not_best=data["loss_if_not_best"],
            threshold=data["threshold"],
            safe_to_stop=data["safe_to_stop"],
            readers_to_call=ReadersToCall.from_json(data["readers_to_call"]),
        )


@dataclass(frozen=True)
class Report:
    """One experiment's statistics, variants by index (``abtest.stats.build_report``)."""

    alpha: float
    variants: tuple[VariantStats, ...]
    chi_square: ChiSquareTest
    pairwise: tuple[PairwiseTest, ...]
    notes: tuple[Note, ...]
    sequential: SequentialReport
    decision: DecisionReport

    # -- the questions the views ask ------------------------------------------

    @property
    def impressions(self) -> int:
        return sum(variant.impressions for variant in self.variants)

    @property
    def clicks(self) -> int:
        return sum(variant.clicks for variant in self.variants)

    @property
    def ctr(self) -> float | None:
        """All headlines together; ``None`` before any impressions."""
        return self.clicks / self.impressions if self.impressions else None

    @property
    def level(self) -> int:
        """The intervals' confidence level in percent: 95 for alpha = 0.05."""
        return round(100 * (1 - self.alpha))

    def leader(self) -> int | None:
        """The variant most likely best (the decision's leader), ``None`` before any impressions."""
        return self.decision.leader

    def pair(self, i: int, j: int) -> PairwiseTest:
        """The fixed-sample test of ``i`` and ``j`` (either order)."""
        a, b = min(i, j), max(i, j)
        # Pairs come in index order: (0, 1), (0, 2), ..., (1, 2), ...
        count = len(self.variants)
        return self.pairwise[a * count - a * (a + 1) // 2 + (b - a - 1)]

    def beats(self, i: int, j: int) -> bool:
        """The fixed-sample test, Holm-adjusted, finds ``i`` better than ``j`` at ``alpha``."""
        test = self.pair(i, j)
        return test.p_holm is not None and test.p_holm < self.alpha and test.ahead == i

    def wins(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(the variants ``i`` beats by the fixed-sample tests, those it doesn't)."""
        others = [j for j in range(len(self.variants)) if j != i]
        beaten = tuple(j for j in others if self.beats(i, j))
        return beaten, tuple(j for j in others if j not in beaten)

    def proven_winner(self) -> int | None:
        """The variant the anytime-valid tests prove better than every other."""
        return self.sequential.winner

    def same(self) -> bool:
        """Every headline is within the threshold of caring: any choice is safe.

        Only with no proven winner: a proven winner is better, however little.
        """
        return self.proven_winner() is None and all(
            variant.expected_loss < self.decision.threshold for variant in self.variants
        )

    # -- JSON -------------------------------------------------------------------

    def to_json(self, ids: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The stats document (docs/api.md); ``ids`` name the winner and leader by id."""
        return {
            "variants": [row.to_json() for row in self.variants],
            "tests": {
                "chi_square": self.chi_square.to_json(),
                "pairwise": [test.to_json() for test in self.pairwise],
                "sequential": self.sequential.to_json(ids),
            },
            "decision": self.decision.to_json(ids),
            "alpha": self.alpha,
            "notes": [note.to_json() for note in self.notes],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], ids: tuple[str, ...] | None = None) -> Report:
        alpha = data["alpha"]
        tests = data["tests"]
        return cls(
            alpha=alpha,
            variants=tuple(VariantStats.from_json(row) for row in data["variants"]),
            chi_square=ChiSquareTest.from_json(tests["chi_square"]),
            pairwise=tuple(PairwiseTest.from_json(test) for test in tests["pairwise"]),
            notes=tuple(Note(note["code"], note["message"]) for note in data["notes"]),
            sequential=SequentialReport.from_json(tests["sequential"], alpha, ids),
            decision=DecisionReport.from_json(data["decision"], ids),
        )


@dataclass(frozen=True)
class Excluded:
    """One headline's readers served but deliberately not counted, by reason
    (:data:`EXCLUSION_REASONS`): crawlers and link previewers (``bot``),
    browser prefetches (``prefetch``) and addresses past their counting
    budget (``rate-limited``).  They are in none of the statistics.
    """

    impressions: tuple[int, ...] = (0,) * len(EXCLUSION_REASONS)
    clicks: tuple[int, ...] = (0,) * len(EXCLUSION_REASONS)

    @classmethod
    def from_hash(cls, stored: Mapping[str, int], variant: str) -> Excluded:
        """Variant ``variant``'s numbers from an excluded hash (``i:<reason>:<variant>``,
        ``c:<reason>:<variant>``, as :mod:`abtest.keys` names them)."""
        return cls(
            tuple(stored.get(keys.excluded_field("i", r, variant), 0) for r in EXCLUSION_REASONS),
            tuple(stored.get(keys.excluded_field("c", r, variant), 0) for r in EXCLUSION_REASONS),
        )

    def by_reason(self) -> list[tuple[str, int, int]]:
        """``(reason, impressions, clicks)`` for each reason, in the document's order."""
        return list(zip(EXCLUSION_REASONS, self.impressions, self.clicks, strict=True))

    def to_json(self) -> dict[str, dict[str, int]]:
        return {
            reason: {"impressions": shown, "clicks": clicked}
            for reason, shown, clicked in self.by_reason()
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, int]] | None) -> Excluded:
        data = data or {}
        return cls(
            tuple(int(data.get(r, {}).get("impressions", 0)) for r in EXCLUSION_REASONS),
            tuple(int(data.get(r, {}).get("clicks", 0)) for r in EXCLUSION_REASONS),
        )


@dataclass(frozen=True)
class SeenCheck:
    """Whether some headline's slot was seen by a different share of the readers
    it was served to than the others' (:func:`abtest.stats.seen_check`).

    A longer headline can push its slot below the fold: then its CTR over the
    readers served is lower for a reason that is not the headline's appeal.
    ``applies`` is False until enough seen impressions were reported by
    beacons for the shares to mean anything.
    """

    applies: bool = False
    #: Per variant: its seen share differs from the other headlines'.
    flagged: tuple[bool, ...] = ()
    #: Per variant: the Holm-adjusted p-value of its share against the others'.
    p_values: tuple[float | None, ...] = ()

    def to_json(self, ids: tuple[str, ...]) -> dict[str, Any]:
        return {
            "applies": self.applies,
            "flagged": [v for v, flag in zip(ids, self.flagged, strict=False) if flag],
            "p_values": list(self.p_values) or None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, ids: tuple[str, ...]) -> SeenCheck:
        if not data:
            return cls()
        flagged = set(data.get("flagged") or ())
        p_values = data.get("p_values") or ()
        return cls(bool(data.get("applies")), tuple(v in flagged for v in ids), tuple(p_values))


@dataclass(frozen=True)
class Signals:
    """Every count kept for each headline, whichever the statistics use, and
    which they use: the ``denominator`` (readers ``served`` or readers who
    ``seen`` the headline) and the ``reward`` (every ``click`` or only
    ``quality`` clicks)."""

    reward: str
    denominator: str
    served: tuple[int, ...]
    seen: tuple[int, ...]
    clicks: tuple[int, ...]
    quality: tuple[int, ...]
    check: SeenCheck = SeenCheck()

    def shown(self, index: int) -> int:
        """Variant ``index``'s impressions in the denominator in use."""
        return (self.seen if self.denominator == "seen" else self.served)[index]

    def rate(self, index: int, quality: bool) -> float | None:
        """Clicks (or quality clicks) per impression in use; None without impressions."""
        shown = self.shown(index)
        if not shown:
            return None
        return (self.quality if quality else self.clicks)[index] / shown

    def seen_share(self, index: int) -> float | None:
        served = self.served[index]
        return self.seen[index] / served if served else None

    def variant_json(self, index: int) -> dict[str, Any]:
        return {
            "served": self.served[index],
            "seen": self.seen[index],
            "seen_share": self.seen_share(index),
            "all_clicks": self.clicks[index],
            "quality_clicks": self.quality[index],
            "click_rate": self.rate(index, quality=False),
            "quality_rate": self.rate(index, quality=True),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], ids: tuple[str, ...]) -> Signals | None:
        """A stats document's signals; None for documents stored before them."""
        rows = data["variants"]
        if "denominator" not in data or any("served" not in row for row in rows):
            return None
        return cls(
            reward=data["reward"],
            denominator=data["denominator"],
            served=tuple(row["served"] for row in rows),
            seen=tuple(row["seen"] for row in rows),
            clicks=tuple(row["all_clicks"] for row in rows),
            quality=tuple(row["quality_clicks"] for row in rows),
            check=SeenCheck.from_json(data.get("seen_check"), ids),
        )


@dataclass(frozen=True)
class ExperimentReport:
    """A :class:`Report` with the experiment it is about (``Service.report``)."""

    slug: str
    title: str
    status: str
    winner: str | None
    created_at: float
    variant_ids: tuple[str, ...]
    headlines: tuple[str, ...]
    stats: Report
    #: Per variant, the readers served but not counted (none given: all zero).
    excluded: tuple[Excluded, ...] = ()
    #: The CTRs stratified by hour (:mod:`abtest.stratified`); ``None``: not computed.
    stratified: Stratified | None = None
    #: Served and seen impressions, clicks and quality clicks, and which the
    #: statistics use; ``None``: served impressions and every click, as in
    #: documents stored before there was a choice.
    signals: Signals | None = None

    def __post_init__(self) -> None:
        if not self.excluded:
            object.__setattr__(self, "excluded", (Excluded(),) * len(self.variant_ids))

    @classmethod
    def of(cls, experiment: Experiment, stats: Report, **more: Any) -> ExperimentReport:
        """``stats`` about ``experiment``, named as the experiment names itself
        (``more``: the other fields)."""
        return cls(
            slug=experiment.slug,
            title=experiment.definition.title,
            status=experiment.status,
            winner=experiment.winner,
            created_at=experiment.created_at,
            variant_ids=experiment.variant_ids,
            headlines=experiment.definition.headlines,
            stats=stats,
            **more,
        )

    def label(self, index: int) -> str:
        """Variant ``index`` as editors read it: its id in capitals."""
        return self.variant_ids[index].upper()

    @property
    def winner_index(self) -> int | None:
        return None if self.winner is None else self.variant_ids.index(self.winner)

    def to_json(self) -> dict[str, Any]:
        """The stats document with the experiment's identity first and each variant named."""
        document = self.stats.to_json(self.variant_ids)
        document["variants"] = [
            {
                "id": variant_id,
                "headline": headline,
                **row,
                **({} if self.signals is None else self.signals.variant_json(index)),
                "excluded": excluded.to_json(),
                "stratified": _stratified_json(self.stratified, index),
            }
            for index, (variant_id, headline, row, excluded) in enumerate(
                zip(
                    self.variant_ids,
                    self.headlines,
                    document["variants"],
                    self.excluded,
                    strict=True,
                )
            )
        ]
        return {
            "experiment": self.slug,
            "title": self.title,
            "status": self.status,
            "winner": self.winner,
            "created_at": self.created_at,
            **document,
            "simpson": self.simpson,
            **(
                {}
                if self.signals is None
                else {
                    "reward": self.signals.reward,
                    "denominator": self.signals.denominator,
                    "seen_check": self.signals.check.to_json(self.variant_ids),
                }
            ),
        }

    @property
    def simpson(self) -> bool:
        """The CTRs stratified by hour and the pooled CTRs name different leaders."""
        return self.stratified is not None and self.stratified.simpson

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentReport:
        ids = tuple(row["id"] for row in data["variants"])
        return cls(
            slug=data["experiment"],
            title=data["title"],
            status=data["status"],
            winner=data["winner"],
            created_at=data["created_at"],
            variant_ids=ids,
            headlines=tuple(row["headline"] for row in data["variants"]),
            stats=Report.from_json(data, ids),
            excluded=tuple(Excluded.from_json(row.get("excluded")) for row in data["variants"]),
            stratified=_stratified_from_json([row.get("stratified") for row in data["variants"]]),
            signals=Signals.from_json(data, ids),
        )


def _stratified_json(stratified: Stratified | None, index: int) -> dict[str, Any] | None:
    if stratified is None:
        return None
    row = stratified.variants[index]
    return {"ctr": row.ctr, "se": row.se, "pooled": row.pooled, "periods": row.periods}


def _stratified_from_json(rows: list[Mapping[str, Any] | None]) -> Stratified | None:
    """Documents stored before stratification, or without it, read back as ``None``."""
    if any(row is None for row in rows):
        return None
    return Stratified.of(
        [VariantStratified(row["ctr"], row["se"], row["pooled"], row["periods"]) for row in rows]
    )
