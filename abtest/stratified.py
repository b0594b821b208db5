"""Time-stratified click-through rates: each variant's CTR with every period weighted alike.

A story's CTR decays as it ages while the bandit moves traffic between
headlines, so the pooled CTR (all clicks / all impressions) of a headline
that got its readers early is compared with that of one that got them late:
the pooled leader can be the worse headline (Simpson's paradox).

The estimator.  Periods are the hours of the hourly series.  A period ``h``
counts when every variant had at least one impression in it (the common
periods ``H``).  With ``n_vh`` impressions and ``x_vh`` clicks of variant
``v`` in period ``h``, ``p_vh = x_vh / n_vh`` and ``N_h = sum_v n_vh`` the
period's impressions across all variants::

    w_h        = N_h / sum_{k in H} N_k          (the same weights for every variant)
    ctr_v      = sum_{h in H} w_h p_vh
    se_v       = sqrt( sum_{h in H} w_h^2 p_vh (1 - p_vh) / n_vh )

the usual stratified-proportion estimate and its standard error (Cochran,
Sampling Techniques, 5.7), the periods standing in for strata.  Weighting
each period by its total readers estimates every headline's CTR had it been
shown to the whole audience, at the ages the audience actually saw.  The
pooled CTR, ``sum_h x_vh / sum_h n_vh``, is over every period given.

The leader under each is the variant with the highest CTR (``None`` on a tie
at the top); ``simpson`` is set when both leaders exist and differ.  Pure
Python, no numpy or scipy: the report module imports it when the app starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Stratified", "VariantStratified", "stratify"]


@dataclass(frozen=True)
class VariantStratified:
    """One variant: its stratified CTR and standard error (``None`` without common
    periods), its pooled CTR (``None`` without impressions) and the periods used."""

    ctr: float | None
    se: float | None
    pooled: float | None
    periods: int


@dataclass(frozen=True)
class Stratified:
    """Every variant's estimates, the leader under each, and whether they disagree."""

    variants: tuple[VariantStratified, ...]
    leader: int | None
    pooled_leader: int | None

    @property
    def simpson(self) -> bool:
        """Stratified and pooled CTRs name different leaders."""
        return (
            self.leader is not None
            and self.pooled_leader is not None
            and self.leader != self.pooled_leader
        )

    @classmethod
    def of(cls, variants: Sequence[VariantStratified]) -> Stratified:
        """The leaders of ``variants`` (a stored document read back)."""
        return cls(
            variants=tuple(variants),
            leader=_leader([row.ctr for row in variants]),
            pooled_leader=_leader([row.pooled for row in variants]),
        )


def _leader(values: Sequence[float | None]) -> int | None:
    if any(value is None for value in values):
        return None
    best = max(values)
    top = [i for i, value in enumerate(values) if value == best]
    return top[0] if len(top) == 1 else None


def stratify(impressions: Sequence[Sequence[int]], clicks: Sequence[Sequence[int]]) -> Stratified:
    """The stratified and pooled CTRs of variants ``impressions[v][h]``, ``clicks[v][h]``.

    Every variant has a count for every period (zero when it had none).
    Raises ``ValueError`` on ragged, negative or impossible counts.
    """
    if len(impressions) != len(clicks) or not impressions:
        raise ValueError("one row of impressions and one of clicks per variant")
    periods = len(impressions[0])
    for shown, clicked in zip(impressions, clicks, strict=True):
        if len(shown) != periods or len(clicked) != periods:
            raise ValueError("every variant needs a count for every period")
        for n, x in zip(shown, clicked, strict=True):
            if n < 0 or x < 0 or x > n:
                raise ValueError(f"{x} clicks of {n} impressions is not a count")
    common = [h for h in range(periods) if all(row[h] > 0 for row in impressions)]
    totals = {h: sum(row[h] for row in impressions) for h in common}
    everyone = sum(totals.values())
    rows = []
    for shown, clicked in zip(impressions, clicks, strict=True):
        n_all = sum(shown)
        pooled = sum(clicked) / n_all if n_all else None
        if not common:
            rows.append(VariantStratified(None, None, pooled, 0))
            continue
        ctr = 0.0
        variance = 0.0
        for h in common:
            w = totals[h] / everyone
            p = clicked[h] / shown[h]
            ctr += w * p
            variance += w * w * p * (1.0 - p) / shown[h]
        rows.append(VariantStratified(ctr, math.sqrt(variance), pooled, len(common)))
    return Stratified.of(rows)
