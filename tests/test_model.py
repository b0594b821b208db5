"""The seed story parser and experiment definitions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import HEADLINES

from abtest.model import (
    ALLOCATIONS,
    DEFAULT_CARING,
    Definition,
    InvalidExperiment,
    check_settings,
    parse_story,
    seed_definition,
)


def test_seed_story_parses_to_its_three_headlines_and_its_paragraphs():
    seed = seed_definition()
    assert seed.slug == "colombia-china"
    assert seed.headlines == HEADLINES
    assert seed.variant_ids == ("a", "b", "c")
    assert len(seed.body) == 6
    assert seed.body[2].startswith("“We look forward to fostering")
    assert seed.body[0].startswith("Colombia’s President Gustavo Petro is in Beijing this week")
    assert seed.body[-1].startswith("As President Petro meets with Chinese officials")
    assert seed.body[-1].endswith("Latin American international relations.")
    text = " ".join(seed.body)
    for furniture in ("Video Poster", "Leave a Reply", "Akismet", "Back To Top", "Required fields"):
        assert furniture not in text


def test_the_bundled_seed_parses_as_the_contracts_seed():
    # tests/data holds the seed story exactly as SPEC's shared folder gives it.
    contract = Path(__file__).resolve().parent / "data" / "colombia-china.txt"
    assert parse_story(contract.read_text("utf-8")) == (
        seed_definition().headlines,
        seed_definition().body,
    )


def definition(**changes):
    fields = {
        "slug": "budget-vote",
        "title": "Budget vote",
        "headlines": "Council passes budget\nBudget passes after late-night vote",
        "body": "First paragraph.\n\nSecond paragraph,\ncontinued.",
    }
    fields.update(changes)
    return Definition.from_mapping(fields)


def test_definition_from_a_form():
    made = definition()
    assert made.headlines == ("Council passes budget", "Budget passes after late-night vote")
    assert made.body == ("First paragraph.", "Second paragraph, continued.")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"slug": "Not A Slug"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"slug": "login"}, "slug"),
        ({"title": "  "}, "title"),
        ({"headlines": "Only one"}, "headlines"),
        ({"headlines": [f"Headline {i}" for i in range(27)]}, "headlines"),
        ({"headlines": ["Same", "Same"]}, "headlines"),
        ({"body": ""}, "body"),
    ],
)
def test_invalid_definitions_name_the_field(changes, field):
    with pytest.raises(InvalidExperiment) as raised:
        definition(**changes)
    assert field in raised.value.errors


def test_twenty_six_headlines_are_allowed():
    made = definition(headlines=[f"Headline {i}" for i in range(26)])
    assert made.variant_ids[-1] == "z"


def test_control_characters_are_refused():
    with pytest.raises(InvalidExperiment):
        definition(headlines=["Fine", "Not\x00fine"])


def test_a_definition_unpickled_in_another_process_hashes_as_a_fresh_one():
    # Its hash is worked out once; string hashes differ from process to
    # process, so an unpickled definition must not bring the old one along.
    make = "import pickle, sys; from abtest.model import seed_definition; "
    dumped = subprocess.run(
        [sys.executable, "-c", make + "sys.stdout.write(pickle.dumps(seed_definition()).hex())"],
        env={**os.environ, "PYTHONHASHSEED": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    check = (
        make + f"d = pickle.loads(bytes.fromhex({dumped!r})); "
        "print(d == seed_definition(), hash(d) == hash(seed_definition()), d.variant_ids)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", check],
        env={**os.environ, "PYTHONHASHSEED": "2"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.split() == ["True", "True", "('a',", "'b',", "'c')"]


def test_settings_defaults_match_the_bandit_and_the_decision():
    from abtest import bandit, decision

    assert ALLOCATIONS == bandit.MODES
    assert DEFAULT_CARING == decision.DEFAULT_RELATIVE_THRESHOLD
    assert check_settings() == ("clicks", DEFAULT_CARING)
    assert check_settings("winner", "0.05") == ("winner", 0.05)


@pytest.mark.parametrize(
    ("allocation", "caring", "fields"),
    [
        ("fastest", 0.02, {"allocation"}),
        ("", 0.02, {"allocation"}),
        ("clicks", 0, {"caring"}),
        ("clicks", 1, {"caring"}),
        ("clicks", -0.1, {"caring"}),
        ("clicks", float("nan"), {"caring"}),
        ("clicks", True, {"caring"}),
        ("clicks", "two percent", {"caring"}),
        ("clicks", None, {"caring"}),
        (None, 2, {"allocation", "caring"}),
    ],
)
def test_bad_settings_name_each_field(allocation, caring, fields):
    with pytest.raises(InvalidExperiment) as raised:
        check_settings(allocation, caring)
    assert set(raised.value.errors) == fields
