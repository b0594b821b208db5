"""`abtest experiments` for an experiment's life, on a real Redis: create as a
draft or scheduled, edit, start, schedule, unschedule, archive, unarchive, move."""

from __future__ import annotations

import json
import time

import pytest
from helpers import SLUG

from abtest.cli import main

STORY = {
    "slug": "budget-vote",
    "title": "Budget vote",
    "headlines": ["Council passes the budget", "Budget passes after a long nigth"],
    "body": "The council voted 7 to 2.\n\nTaxes stay as they were.",
}


@pytest.fixture
def story(tmp_path):
    path = tmp_path / "budget.json"
    path.write_text(json.dumps(STORY))
    return path


def run(runner, *arguments: str):
    return runner.invoke(main, ["experiments", *arguments])


def utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(timestamp))


@pytest.fixture
def actor(monkeypatch) -> str:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # what getpass.getuser reads first
        monkeypatch.setenv(name, "night-desk")
    return "cli:night-desk"


def test_a_draft_is_edited_scheduled_unscheduled_and_started(
    runner, service, story, tmp_path, actor
):
    created = run(runner, "create", str(story), "--draft")
    assert created.exit_code == 0, created.output
    assert "created budget-vote as a draft with 2 headlines" in created.output
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(
        'title = "Budget vote"\n'
        'headlines = ["Council passes the budget", "Budget passes after a long night"]\n'
        'body = """The council voted 7 to 2.\n\nTaxes stay as they were."""\n'
    )
    edited = run(runner, "edit", "budget-vote", str(fixed))
    assert edited.exit_code == 0, edited.output
    assert edited.output.strip() == "budget-vote: draft"
    assert service.fresh("budget-vote").definition.headlines[1].endswith("long night")

    soon = service.clock() + 7200
    scheduled = run(runner, "schedule", "budget-vote", utc(soon))
    assert scheduled.exit_code == 0, scheduled.output
    assert scheduled.output.strip() == (
        f"budget-vote: scheduled, starts {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(soon))}"
    )
    assert run(runner, "unschedule", "budget-vote").output.strip() == "budget-vote: draft"
    assert run(runner, "start", "budget-vote").output.strip() == "budget-vote: running"
    actions = [(e["action"], e["editor"]) for e in reversed(service.audit("budget-vote"))]
    assert actions == [
        ("create", actor),
        ("edit", actor),
        ("schedule", actor),
        ("unschedule", actor),
        ("start", actor),
    ]
    rows = [line.split()[:2] for line in run(runner, "list").output.splitlines()]
    assert ["budget-vote", "running"] in rows


def test_create_scheduled_and_its_refusals(runner, service, story):
    soon = service.clock() + 3600
    created = run(runner, "create", str(story), "--starts-at", utc(soon) + "+00:00")
    assert created.exit_code == 0, created.output
    assert service.fresh("budget-vote").status == "scheduled"
    assert "scheduled" in run(runner, "list").output

    past = run(runner, "schedule", "budget-vote", utc(service.clock() - 3600))
    assert past.exit_code == 1 and "that start time has passed" in past.output
    nonsense = run(runner, "schedule", "budget-vote", "next tuesday")
    assert nonsense.exit_code == 2 and "is not a time" in nonsense.output
    both = run(runner, "create", str(story), "--draft", "--starts-at", utc(soon))
    assert both.exit_code == 2 and "exclude each other" in both.output
    running = run(runner, "schedule", SLUG, utc(soon))
    assert running.exit_code == 1
    assert "only a draft can be scheduled; this test is running already" in running.output


def test_edit_is_refused_once_a_reader_is_counted(runner, service, story, tmp_path):
    run(runner, "create", str(story))
    service.store.record_impressions([("budget-vote", "a")])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**STORY, "title": "Another"}))
    refused = run(runner, "edit", "budget-vote", str(other))
    assert refused.exit_code == 1
    assert "readers have seen this test (1 impression counted)" in refused.output
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**STORY, "slug": "elsewhere"}))
    mismatch = run(runner, "edit", "budget-vote", str(wrong))
    assert (
        mismatch.exit_code == 1 and "is the story 'elsewhere', not 'budget-vote'" in mismatch.output
    )


def test_archive_unarchive_and_move(runner, service, story):
    run(runner, "create", str(story))
    assert [e.slug for e in service.front_page_order()] == ["budget-vote", SLUG]
    moved = run(runner, "move", SLUG, "1")
    assert moved.exit_code == 0, moved.output
    assert [e.slug for e in service.front_page_order()] == [SLUG, "budget-vote"]
    assert run(runner, "move", SLUG, "0").exit_code == 2

    refused = run(runner, "archive", SLUG)
    assert refused.exit_code == 1 and "only a decided or paused test can be archived" in (
        refused.output
    )
    run(runner, "decide", SLUG, "c")
    archived = run(runner, "archive", SLUG)
    assert archived.output.strip() == f"{SLUG}: decided, winner C, archived"
    assert "decided, archived" in run(runner, "list").output
    assert [e.slug for e in service.front_page_order()] == ["budget-vote"]
    assert run(runner, "reopen", SLUG).exit_code == 1
    assert run(runner, "unarchive", SLUG).output.strip() == f"{SLUG}: decided, winner C"
    assert [e.slug for e in service.front_page_order()] == [SLUG, "budget-vote"]
