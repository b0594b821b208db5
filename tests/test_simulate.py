"""The simulator at tiny sizes: invariants and outcomes known in advance, never timings."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from abtest import stats
from abtest.cli import main
from abtest.decision import decide
from abtest.simulate import _compare as compare  # the quadrature the simulator uses
from abtest.simulate import (
    evaluate_rules,
    fixed_sample_winner,
    load_upworthy,
    replay_upworthy,
    run_allocation,
    simulate,
)


def test_a_uniform_split_gives_each_headline_a_kth():
    truth = np.tile([0.02, 0.02, 0.02], (200, 1))
    n, k = run_allocation(truth, 3000, "uniform", np.random.default_rng(1))
    assert n.shape == (200, 30, 3)
    assert np.all(n.sum(axis=2) == np.arange(100, 3001, 100))
    share = n[:, -1].sum(axis=0) / n[:, -1].sum()
    assert share == pytest.approx([1 / 3] * 3, abs=0.01)
    assert np.all(k <= n)


@pytest.mark.parametrize("allocation", ["clicks", "winner", "ideal"])
def test_bandit_allocations_count_every_reader_once(allocation):
    truth = np.tile([0.01, 0.05], (20, 1))
    n, k = run_allocation(truth, 2000, allocation, np.random.default_rng(2), refresh=2)
    assert np.all(n.sum(axis=2) == np.arange(100, 2001, 100))
    assert np.all(np.diff(n, axis=1) >= 0) and np.all(k <= n)
    # Both bandits favour the better headline; top-two gives it about half.
    share = n[:, -1, 1].sum() / n[:, -1].sum()
    assert share > (0.45 if allocation == "winner" else 0.8)


def test_fixed_sample_winner_agrees_with_the_stats_document():
    rng = np.random.default_rng(3)
    n = rng.integers(50, 5000, size=(300, 3))
    k = rng.binomial(n, rng.choice([0.01, 0.02, 0.04], size=(300, 3)))
    winners = fixed_sample_winner(n.astype(float), k.astype(float), 0.05)
    for row in range(300):
        report = stats.analyze(n[row].tolist(), k[row].tolist())
        ctr = k[row] / n[row]
        leader = int(np.argmax(ctr))
        beaten = [
            pair
            for pair in report["tests"]["pairwise"]
            if leader in (pair["a"], pair["b"])
            and pair["p_holm"] is not None
            and pair["p_holm"] < 0.05
            and (pair["diff"] < 0 if pair["a"] == leader else pair["diff"] > 0)
        ]
        expected = leader if len(beaten) == 2 else -1
        assert winners[row] == expected, (n[row], k[row])
    assert (winners >= 0).any() and (winners < 0).any()


def test_rules_match_their_exact_values_at_every_look():
    # The normal approximations only choose where to look exactly; the first
    # look each rule fires must be the first where the exact value passes.
    truth = np.tile([0.02, 0.025, 0.03], (12, 1))
    n, k = run_allocation(truth, 4000, "clicks", np.random.default_rng(4))
    rules = evaluate_rules(n, k)
    for run in range(12):
        first_pbest = first_safe = -1
        for look in range(n.shape[1]):
            counts, clicks = n[run, look], k[run, look]
            if first_pbest < 0 and compare(counts, clicks).prob_best.max() >= 0.95:
                first_pbest = look
            advice = decide(
                counts.astype(int).tolist(), clicks.astype(int).tolist(), forecast=False
            )
            if first_safe < 0 and advice.safe_to_stop:
                first_safe = look
        assert rules["pbest"][0][run] == first_pbest
        assert rules["safe"][0][run] == first_safe


def test_a_huge_gap_is_proven_quickly_and_rightly():
    outcome = simulate([0.01, 0.08], readers=3000, runs=40, allocations=("uniform", "winner"))
    for allocation in outcome.allocations.values():
        proven = allocation.rules["proven"]
        assert proven.fired == 1.0 and proven.wrong == 0.0
        assert proven.median_readers <= 1500


def test_a_a_tests_rarely_get_a_false_proven_call():
    outcome = simulate([0.02, 0.02, 0.02], readers=10_000, runs=150, seed=5)
    for allocation in outcome.allocations.values():
        proven = allocation.rules["proven"]
        assert proven.fired == proven.wrong  # any claim in an A/A test is wrong
        assert proven.fired <= 0.05
        assert allocation.regret == 0.0


def test_results_are_reproducible_and_regret_orders_as_expected():
    first = simulate([0.01, 0.03], readers=2000, runs=30, seed=9)
    second = simulate([0.01, 0.03], readers=2000, runs=30, seed=9)
    assert first.to_dict() == second.to_dict()
    regret = {name: a.regret for name, a in first.allocations.items()}
    assert regret["clicks"] < regret["uniform"] and regret["ideal"] < regret["uniform"]
    json.dumps(first.to_dict(), allow_nan=False)


def test_the_bundled_upworthy_tests_load():
    tests = load_upworthy()
    assert len(tests) > 4000
    assert all(len(n) >= 3 and len(n) == len(k) for n, k in tests)
    assert all(0 <= c <= i for n, k in tests for i, c in zip(n, k, strict=True))


def test_an_upworthy_replay_runs():
    outcome = replay_upworthy(tests=3, allocations=("clicks", "uniform"), seed=2)
    assert outcome.tests == 3
    for row in outcome.allocations.values():
        assert row["clicks"] > 0 and 0 <= row["proven_fired"] <= 1


def test_simulate_command_prints_tables_and_json():
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["simulate", "--ctr", "1,5", "--readers", "1000", "--runs", "5", "--allocation", "uniform"],
    )
    assert result.exit_code == 0, result.output
    assert "proven (anytime-valid)" in result.output and "uniform" in result.output
    result = runner.invoke(
        main,
        [
            "simulate",
            "--ctr",
            "1,5",
            "--readers",
            "1000",
            "--runs",
            "5",
            "--allocation",
            "clicks",
            "--json",
        ],
    )
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ctrs"] == [0.01, 0.05]
    assert set(document["allocations"]) == {"clicks"}


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--ctr", "1"], "2 to 26 CTRs"),
        (["--ctr", "1,abc"], "percent"),
        (["--ctr", "1,150"], "between 0 and 100"),
        ([], "either --ctr or --upworthy"),
        (["--ctr", "1,2", "--upworthy"], "either --ctr or --upworthy"),
        (["--ctr", "1,2", "--readers", "50"], "at least --look-every"),
    ],
)
def test_simulate_command_refuses_bad_input(arguments, message):
    result = CliRunner().invoke(main, ["simulate", *arguments])
    assert result.exit_code == 2
    assert message in result.output
