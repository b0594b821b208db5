"""The proven call's power under several mixture priors (docs/decisions.md, the prior).

    python bench/prior_power.py

Top-two sampling ("find the winner"), 300 runs of 100,000 readers per
scenario, seed 7: the share of runs with a right proven call by then, and the
median readers to it, for each prior.  A simulation, not a timing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from abtest.sequential import proven_leader  # noqa: E402
from abtest.simulate import run_allocation  # noqa: E402

PRIORS = ((1.0, 1.0), (1.0, 49.0), (4.0, 196.0), (10.0, 490.0), (40.0, 1960.0))
SCENARIOS = ((0.015, 0.017, 0.02), (0.02, 0.02, 0.024), (0.10, 0.11, 0.12), (0.02, 0.02, 0.02))
RUNS, READERS = 300, 100_000


def main() -> None:
    print("| true CTRs | " + " | ".join(f"Beta({a:g}, {b:g})" for a, b in PRIORS) + " |")
    print("|---|" + "---:|" * len(PRIORS))
    for ctrs in SCENARIOS:
        truth = np.tile(ctrs, (RUNS, 1))
        n, k = run_allocation(truth, READERS, "winner", np.random.default_rng([7, len("winner")]))
        unique_best = int(np.argmax(ctrs)) if sorted(ctrs)[-1] > sorted(ctrs)[-2] else -2
        cells = []
        for prior in PRIORS:
            winners = proven_leader(n, k, 0.05, prior)
            fired = (winners >= 0).any(axis=1)
            first = np.where(fired, (winners >= 0).argmax(axis=1), -1)
            chosen = winners[np.arange(RUNS), np.maximum(first, 0)]
            right = fired & (chosen == unique_best)
            cells.append(f"{100 * right.mean():.1f}% (wrong {100 * (fired & ~right).mean():.1f}%)")
        label = ", ".join(f"{100 * c:g}" for c in ctrs)
        print(f"| {label}% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
