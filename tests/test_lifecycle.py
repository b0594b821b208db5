"""An experiment's life as editors run it, against a real Redis: pause, drafts,
schedules, edits, archive and the front page's order.

Readers go through the real reader endpoints; each rule is also checked where
it is enforced atomically (the Lua scripts), since a worker's copy of the
experiments lags Redis.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from helpers import BROWSER, HEADLINES, SLUG, front, story_headline, teasers, totals

from abtest import create_app, keys
from abtest.model import (
    ACTIONS,
    DECIDED,
    DRAFT,
    PAUSED,
    RUNNING,
    SCHEDULED,
    Definition,
    Experiment,
    InvalidExperiment,
    refusal,
)
from abtest.service import ActionRefused, UnknownExperiment
from abtest.snapshot import start_due
from abtest.tokens import Visitor

STORY = Definition(
    slug="budget-vote",
    title="Budget vote",
    headlines=("Council passes the budget", "Budget passes after a long night"),
    body=("The council voted 7 to 2.", "Taxes stay as they were."),
)
EDITED = dataclasses.replace(
    STORY, headlines=("Council passes the budget", "Budget passes at 2 am")
)


def eventually(condition, limit: float = 30.0) -> bool:
    """Whether ``condition()`` holds within ``limit`` seconds (a guard against hanging)."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def get(client, path: str):
    return client.get(path, headers={"User-Agent": BROWSER})


def front_slugs(client) -> list[str]:
    """The stories on the front page, top first, told apart by their first paragraph
    (a teaser links through a click token, or straight to the story)."""
    found = []
    for teaser in front(client).text.split('<article class="teaser"')[1:]:
        for definition in (STORY, OTHER, THIRD):
            if definition.body[0] in teaser:
                found.append(definition.slug)
        if "Colombia" in teaser:
            found.append(SLUG)
    return found


OTHER = Definition(
    slug="harbour-fire",
    title="Harbour fire",
    headlines=("Fire at the harbour", "Harbour fire out after six hours"),
    body=("Crews fought the blaze all night.",),
)
THIRD = Definition(
    slug="school-prize",
    title="School prize",
    headlines=("Local school wins prize", "Pupils win the national science prize"),
    body=("The prize came with a new laboratory.",),
)


# -- the rules, as one table ----------------------------------------------------------


def _experiment(status: str, seen: int = 0, archived: bool = False) -> Experiment:
    return Experiment(
        definition=STORY,
        status=status,
        winner="b" if status == DECIDED else None,
        impressions=(seen, 0),
        clicks=(0, 0),
        archived_at=1.0 if archived else None,
    )


#: Which actions apply in which state (the states/transitions table in docs/api.md).
ALLOWED = {
    (DRAFT, False): {"start", "schedule", "edit"},
    (SCHEDULED, False): {"start", "schedule", "unschedule", "edit"},
    (RUNNING, False): {"pause", "decide", "edit", "move"},
    (PAUSED, False): {"resume", "decide", "archive", "edit", "move"},
    (DECIDED, False): {"reopen", "archive", "move"},
    (PAUSED, True): {"unarchive"},
    (DECIDED, True): {"unarchive"},
}


@pytest.mark.parametrize(("status", "archived"), list(ALLOWED))
def test_each_action_applies_where_the_table_says_and_says_why_not_elsewhere(status, archived):
    experiment = _experiment(status, archived=archived)
    allowed = {action for action in ACTIONS if refusal(experiment, action) is None}
    assert allowed == ALLOWED[(status, archived)]
    for action in set(ACTIONS) - allowed:
        message = refusal(experiment, action)
        assert message and not message.endswith(".")
        if archived:
            assert "unarchive it first" in message or action == "unarchive"


def test_edit_is_refused_once_an_impression_is_counted():
    for status in (RUNNING, PAUSED):
        assert refusal(_experiment(status, seen=0), "edit") is None
        assert "counts would mix two texts" in refusal(_experiment(status, seen=1), "edit")


# -- pause -------------------------------------------------------------------------------


def test_a_paused_story_stays_on_the_front_page_with_headline_a_and_counts_nothing(
    client, new_client, service
):
    """The dashboard says "Paused. Every reader gets headline A": so it is, on the
    front page and the story page, for new readers and for readers who had
    another headline; nothing is counted, and resuming gives readers their own back."""
    assigned = None
    for _ in range(50):  # a reader whose headline is not A
        browser = new_client()
        ((link, headline),) = teasers(front(browser).data)
        if headline != HEADLINES[0]:
            assigned = (browser, link, headline)
            break
    assert assigned is not None
    browser, link, headline = assigned
    before = totals(service)
    service.pause(SLUG, editor="ed")
    for reader in (browser, new_client()):
        assert teasers(front(reader).data) == [(f"/articles/{SLUG}", HEADLINES[0])]
        assert story_headline(get(reader, f"/articles/{SLUG}").data) == HEADLINES[0]
        assignment = get(reader, f"/api/v1/experiments/{SLUG}/assignment").get_json()
        assert assignment["headline"] == HEADLINES[0]
        assert assignment["click_url"] == f"/articles/{SLUG}"
    assert get(browser, link).status_code == 303  # an old click link still leads to the story
    assert totals(service) == before
    service.resume(SLUG, editor="ed")
    assert teasers(front(browser).data)[0][1] == headline  # their own headline is back


# -- drafts ------------------------------------------------------------------------------


def test_a_draft_is_not_published_until_started(client, new_client, service):
    assert service.create(STORY, status=DRAFT, editor="ed")
    assert service.fresh(STORY.slug).status == DRAFT
    reader = new_client()
    assert STORY.slug not in front_slugs(reader)
    assert get(reader, f"/articles/{STORY.slug}").status_code == 404
    assert get(reader, f"/api/v1/experiments/{STORY.slug}/assignment").status_code == 404
    bot = reader.get(f"/articles/{STORY.slug}", headers={"User-Agent": "Googlebot/2.1"})
    assert bot.status_code == 404
    # Even a count sent straight to Redis is refused: the script counts running tests only.
    (result,) = service.store.record_impressions([(STORY.slug, "a")])
    assert result.status == DRAFT and not result.counted
    assert totals(service, STORY.slug) == ((0, 0), (0, 0))
    with pytest.raises(ActionRefused, match="start it first"):
        service.decide(STORY.slug, "a", editor="ed")
    with pytest.raises(ActionRefused, match="only a running test"):
        service.pause(STORY.slug, editor="ed")

    started = service.start(STORY.slug, editor="ed")
    assert started.status == RUNNING
    assert front_slugs(reader)[0] == STORY.slug  # first on the front page
    assert get(reader, f"/articles/{STORY.slug}").status_code == 200
    assert sum(totals(service, STORY.slug)[0]) == 1
    assert [
        (e["action"], e["editor"], e["from"], e["status"]) for e in service.audit(STORY.slug)
    ] == [
        ("start", "ed", DRAFT, RUNNING),
        ("create", "ed", None, DRAFT),
    ]
    with pytest.raises(ActionRefused, match="only a draft or a scheduled test"):
        service.start(STORY.slug, editor="ed")


# -- schedules ---------------------------------------------------------------------------


def test_a_scheduled_story_waits_for_its_time_in_redis_clock(service):
    (seconds, micros) = service.store.redis.time()
    now = seconds + micros / 1e6
    assert service.create(STORY, status=SCHEDULED, starts_at=now + 3600, editor="ed")
    experiment = service.fresh(STORY.slug)
    assert (experiment.status, experiment.starts_at) == (SCHEDULED, pytest.approx(now + 3600))
    # Not due by Redis's clock: the scheduled start refuses, whoever asks.
    assert not service.store.start(STORY.slug, {"action": "start"})
    (result,) = service.store.record_impressions([(STORY.slug, "a")])
    assert not result.counted
    # Its time has come (written as if the hour had passed): exactly one start, by the schedule.
    service.store.redis.hset(keys.meta(STORY.slug), "starts_at", repr(now - 1))
    assert service.store.start(STORY.slug, {"action": "start", "editor": "schedule"})
    assert not service.store.start(STORY.slug, {"action": "start", "editor": "schedule"})
    started = service.fresh(STORY.slug)
    assert started.status == RUNNING and started.starts_at is None
    assert started.rank == pytest.approx(now - 1)  # live since its start time
    assert [e["action"] for e in service.audit(STORY.slug)] == ["start", "create"]


def test_a_scheduled_story_goes_live_by_itself_on_every_worker(
    app, settings, redis_client, service
):
    """Two workers (two apps on one Redis) refresh on their own; the first to see
    the time has come starts it, once, and both then serve and count it."""
    second = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    try:
        clients = [worker.test_client() for worker in (app, second)]
        service.create(STORY, status=SCHEDULED, starts_at=service.clock() + 1.0, editor="ed")
        assert eventually(
            lambda: all(get(c, f"/articles/{STORY.slug}").status_code == 200 for c in clients)
        )
        assert all(STORY.slug in front_slugs(c) for c in clients)
        starts = [e for e in service.audit(STORY.slug) if e["action"] == "start"]
        assert [(e["editor"], e["from"]) for e in starts] == [("schedule", SCHEDULED)]
        assert sum(totals(service, STORY.slug)[0]) == 2  # one reader counted on each worker
    finally:
        second.extensions["abtest"]["service"].stop()


def test_start_due_starts_only_what_is_due(service):
    (seconds, _) = service.store.redis.time()
    service.create(STORY, status=SCHEDULED, starts_at=seconds + 3600)
    service.create(OTHER, status=SCHEDULED, starts_at=seconds + 3600)
    service.store.redis.hset(keys.meta(OTHER.slug), "starts_at", repr(seconds - 5))
    experiments = service.store.load([STORY.slug, OTHER.slug])
    # This host's estimate of Redis's clock says the other is due: the script agrees.
    after = {e.slug: e.status for e in start_due(service.store, experiments)}
    assert after == {STORY.slug: SCHEDULED, OTHER.slug: RUNNING}


def test_a_start_time_must_be_in_the_coming_year(service):
    now = service.clock()
    for starts_at, words in (
        (now - 60, "has passed"),
        (now + 400 * 86_400, "within the coming year"),
        (float("nan"), "give the start time"),
    ):
        with pytest.raises(InvalidExperiment, match=words):
            service.create(STORY, status=SCHEDULED, starts_at=starts_at)
    assert service.store.get(STORY.slug) is None
    service.create(STORY, status=DRAFT)
    with pytest.raises(InvalidExperiment, match="has passed"):
        service.schedule(STORY.slug, now - 60, editor="ed")
    assert service.fresh(STORY.slug).status == DRAFT


def test_schedule_reschedule_unschedule_and_start_now(client, service):
    now = service.clock()
    service.create(STORY, status=DRAFT)
    scheduled = service.schedule(STORY.slug, now + 600, editor="ed")
    assert (scheduled.status, scheduled.starts_at) == (SCHEDULED, pytest.approx(now + 600))
    moved = service.schedule(STORY.slug, now + 1200, editor="ed")
    assert moved.starts_at == pytest.approx(now + 1200)
    draft = service.unschedule(STORY.slug, editor="ed")
    assert (draft.status, draft.starts_at) == (DRAFT, None)
    with pytest.raises(ActionRefused, match="only a scheduled test can be unscheduled"):
        service.unschedule(STORY.slug, editor="ed")
    service.schedule(STORY.slug, now + 600, editor="ed")
    started = service.start(STORY.slug, editor="ed")
    assert (started.status, started.starts_at) == (RUNNING, None)
    assert get(client, f"/articles/{STORY.slug}").status_code == 200
    with pytest.raises(ActionRefused, match="this test is running already"):
        service.schedule(STORY.slug, now + 600, editor="ed")
    actions = [e["action"] for e in service.audit(STORY.slug)]
    assert actions == ["start", "schedule", "unschedule", "schedule", "schedule"]


# -- edits -------------------------------------------------------------------------------


def test_a_draft_is_edited_and_the_old_text_kept_in_the_audit_log(client, service):
    service.create(STORY, status=DRAFT)
    edited = service.edit(STORY.slug, EDITED, editor="ed")
    assert edited.definition == EDITED
    (entry,) = service.audit(STORY.slug)
    assert (entry["action"], entry["editor"], entry["changed"]) == ("edit", "ed", ["headline B"])
    assert entry["text_from"] == STORY.to_json()
    with pytest.raises(ActionRefused, match="the same as before"):
        service.edit(STORY.slug, EDITED, editor="ed")
    more = dataclasses.replace(
        EDITED, title="Budget", headlines=(*EDITED.headlines, "A third way to say it")
    )
    assert service.edit(STORY.slug, more, editor="ed").variant_ids == ("a", "b", "c")
    assert service.audit(STORY.slug)[0]["changed"] == ["title", "headline C added"]
    service.start(STORY.slug, editor="ed")
    assert story_headline(get(client, f"/articles/{STORY.slug}").data) in more.headlines


def test_an_edit_is_refused_once_anyone_has_been_counted(client, service):
    service.create(STORY)
    assert service.edit(STORY.slug, EDITED, editor="ed").definition == EDITED  # nobody yet
    service.store.redis.hdel(keys.meta(STORY.slug), "quiet_until")  # done waiting
    assert get(client, f"/articles/{STORY.slug}").status_code == 200
    assert sum(totals(service, STORY.slug)[0]) == 1
    again = dataclasses.replace(EDITED, title="Another title")
    with pytest.raises(ActionRefused, match=r"readers have seen this test \(1 impression"):
        service.edit(STORY.slug, again, editor="ed")
    service.pause(STORY.slug, editor="ed")
    with pytest.raises(ActionRefused, match="counts would mix two texts"):
        service.edit(STORY.slug, again, editor="ed")
    assert service.fresh(STORY.slug).definition == EDITED
    assert [e["action"] for e in service.audit(STORY.slug)] == ["pause", "edit"]


def test_the_edit_script_refuses_a_counted_test_even_when_the_service_thought_otherwise(service):
    """A reader counted between the editor's page and the save: the script decides."""
    service.create(STORY)
    stale = service.fresh(STORY.slug)  # nobody counted yet, as the editor saw it
    service.store.record_impressions([(STORY.slug, "b")])
    assert service.store.edit(EDITED, stale.definition, 0.0, {"action": "edit"}) == "seen"
    assert service.fresh(STORY.slug).definition == STORY
    assert service.audit(STORY.slug) == []


def test_an_edit_made_from_an_old_copy_of_the_text_is_refused(service):
    service.create(STORY, status=DRAFT)
    service.edit(STORY.slug, EDITED, editor="first")
    # A second editor saved a change to the text as it was before the first edit.
    stale = dataclasses.replace(STORY, title="Budget vote, updated")
    assert service.store.edit(stale, STORY, 0.0, {"action": "edit"}) == "changed"
    assert service.fresh(STORY.slug).definition == EDITED


def test_a_decided_or_archived_story_cant_be_edited(service):
    service.create(STORY)
    service.decide(STORY.slug, "b", editor="ed")
    with pytest.raises(ActionRefused, match="reopen the test first"):
        service.edit(STORY.slug, EDITED, editor="ed")
    service.archive(STORY.slug, editor="ed")
    with pytest.raises(ActionRefused, match="archived; unarchive it first"):
        service.edit(STORY.slug, EDITED, editor="ed")
    assert service.store.edit(EDITED, STORY, 0.0, {"action": "edit"}) == "archived"


def test_counting_waits_after_an_edit_until_every_worker_has_the_new_text(client, service):
    """A worker may serve its copy of the old text for up to its refresh interval:
    the counting script counts nothing of the edited story until the quiet time is over."""
    service.create(STORY)
    service.EDIT_QUIET = 3600.0  # a long wait, so the test does not race the clock
    service.edit(STORY.slug, EDITED, editor="ed")
    (result,) = service.store.record_impressions([(STORY.slug, "b")])
    assert (result.status, result.counted, result.reason) == (RUNNING, False, "edited")
    response = get(client, f"/articles/{STORY.slug}")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers  # uncounted
    assert totals(service, STORY.slug) == ((0, 0), (0, 0))
    service.EDIT_QUIET = 0.2
    service.edit(STORY.slug, STORY, editor="ed")
    assert eventually(lambda: service.store.record_impressions([(STORY.slug, "a")])[0].counted)


# -- archive -----------------------------------------------------------------------------


def test_an_archived_story_leaves_the_front_page_and_keeps_serving_its_winner(
    client, new_client, service
):
    service.create(STORY)
    service.decide(STORY.slug, "b", editor="ed")
    reader = new_client()
    assert STORY.slug in front_slugs(reader)
    archived = service.archive(STORY.slug, editor="ed")
    assert archived.archived and archived.status == DECIDED and archived.winner == "b"
    assert STORY.slug not in front_slugs(reader)
    assert front_slugs(reader) == [SLUG]
    story = get(reader, f"/articles/{STORY.slug}")
    assert story.status_code == 200 and story_headline(story.data) == STORY.headlines[1]
    # Nothing but unarchive applies, even straight to Redis (the status script refuses).
    for act in (service.reopen, service.archive):
        with pytest.raises(ActionRefused, match="unarchive it first"):
            act(STORY.slug, editor="ed")
    assert not service.store.set_status(STORY.slug, RUNNING, None, {}, expect=DECIDED)
    assert service.fresh(STORY.slug).status == DECIDED
    unarchived = service.unarchive(STORY.slug, editor="ed")
    assert not unarchived.archived and unarchived.status == DECIDED
    assert STORY.slug in front_slugs(reader)
    with pytest.raises(ActionRefused, match="not archived"):
        service.unarchive(STORY.slug, editor="ed")
    actions = [(e["action"], e["winner"]) for e in service.audit(STORY.slug)]
    assert actions == [("unarchive", "b"), ("archive", "b"), ("decide", "b")]


def test_a_paused_story_can_be_archived_and_a_running_one_cannot(client, service):
    with pytest.raises(ActionRefused, match="only a decided or paused test can be archived"):
        service.archive(SLUG, editor="ed")
    service.pause(SLUG, editor="ed")
    service.archive(SLUG, editor="ed")
    assert front_slugs(client) == []
    assert story_headline(get(client, f"/articles/{SLUG}").data) == HEADLINES[0]
    with pytest.raises(ActionRefused, match="unarchive it first"):
        service.resume(SLUG, editor="ed")


# -- the front page's order --------------------------------------------------------------


def _three_stories(service) -> None:
    now = service.clock()
    for offset, definition in enumerate((STORY, OTHER, THIRD), start=1):
        service.store.create(definition, now=now + offset)  # THIRD is the newest
    service.fresh_all()


def test_the_front_page_is_newest_first_until_an_editor_moves_a_story(client, service):
    _three_stories(service)
    assert front_slugs(client) == [THIRD.slug, OTHER.slug, STORY.slug, SLUG]
    assert [e.slug for e in service.front_page_order()] == front_slugs(client)
    service.move(SLUG, 1, editor="ed")
    assert front_slugs(client) == [SLUG, THIRD.slug, OTHER.slug, STORY.slug]
    service.move(THIRD.slug, 3, editor="ed")
    assert front_slugs(client) == [SLUG, OTHER.slug, THIRD.slug, STORY.slug]
    service.move(OTHER.slug, 99, editor="ed")  # past the end: the end
    assert front_slugs(client) == [SLUG, THIRD.slug, STORY.slug, OTHER.slug]
    with pytest.raises(ActionRefused, match="at position 4 already"):
        service.move(OTHER.slug, 4, editor="ed")
    (entry, *_) = service.audit(THIRD.slug)
    assert (entry["action"], entry["position_from"], entry["position"]) == ("move", 2, 3)
    # A story that goes live later comes first; the editor's order below it holds.
    service.store.create(
        Definition("late-news", "Late", ("One", "Two"), ("Just in.",)), now=service.clock() + 60
    )
    order = [e.slug for e in service.front_page_order()]
    assert order == ["late-news", SLUG, THIRD.slug, STORY.slug, OTHER.slug]


def test_every_worker_applies_the_order_within_its_refresh(settings, redis_client, service):
    _three_stories(service)
    other = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    try:
        reader = other.test_client()
        assert front_slugs(reader)[0] == THIRD.slug
        service.move(STORY.slug, 1, editor="ed")
        assert eventually(lambda: front_slugs(reader)[0] == STORY.slug)
    finally:
        other.extensions["abtest"]["service"].stop()


def test_stories_with_equal_ranks_are_numbered_again_to_make_room(client, service):
    now = service.clock()
    for definition in (STORY, OTHER, THIRD):
        service.store.create(definition, now=now)  # three stories created at the same moment
    service.fresh_all()
    before = [e.slug for e in service.front_page_order()]
    moving = before[3]
    service.move(moving, 2, editor="ed")
    after = [e.slug for e in service.front_page_order()]
    assert after == [before[0], moving, before[1], before[2]]
    assert front_slugs(client) == after
    assert len({e.order for e in service.front_page_order()}) == 4


def test_only_stories_on_the_front_page_can_be_moved(service):
    service.create(STORY, status=DRAFT)
    with pytest.raises(ActionRefused, match="this one is draft"):
        service.move(STORY.slug, 1, editor="ed")
    with pytest.raises(UnknownExperiment):
        service.move("no-such-story", 1, editor="ed")


def test_the_visitor_cookie_keeps_a_paused_storys_assignment(service):
    service.pause(SLUG, editor="ed")
    kept = service.read_visitor(service.visitor_cookie(Visitor("v1", {SLUG: "c", "x": "a"})))
    assert dict(kept.assignments) == {SLUG: "c"}
