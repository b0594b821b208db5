"""The experiment page's seen impressions and quality clicks: served and seen with
the seen share, both rates side by side over the denominator in use, the
measures the verdict counts in words, the seen check's warning, and the
settings form's reward and denominator, against a real Redis.

Counts come from readers through the real endpoints (the batch assignment,
the seen and engaged-time beacons, the click) or, for what is only shown,
are written into the counts hash.  Expected numbers are worked out here from
the counts, with exact fractions.
"""

from __future__ import annotations

import html
import json
import re
from fractions import Fraction

import pytest
from helpers import BROWSER, SLUG
from test_dashboard import csrf_token, editor, parse_csv, post_action  # noqa: F401 (a fixture)

from abtest import keys


def batch(reader) -> dict:
    response = reader.get(f"/api/v1/assignments?slugs={SLUG}", headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    (one,) = response.get_json()["assignments"]
    return one


def beacon(reader, path: str, body: dict) -> None:
    """What navigator.sendBeacon sends: a string, as text/plain."""
    response = reader.post(
        path,
        data=json.dumps(body),
        content_type="text/plain;charset=UTF-8",
        headers={"User-Agent": BROWSER},
    )
    assert response.status_code == 204, response.data


def reader_visits(new_client, *, seen: bool, clicks: bool, reads: bool) -> str:
    """A new reader served the story; the headline's variant."""
    reader = new_client()
    one = batch(reader)
    if seen:
        beacon(reader, "/api/v1/seen", {"tokens": [one["token"]]})
    if clicks:
        assert reader.get(one["click_url"], headers={"User-Agent": BROWSER}).status_code == 303
    if reads:
        beacon(reader, "/api/v1/engaged", {"experiment": SLUG, "seconds": 20})
    return one["variant"]


def write_counts(redis_client, service, fields: dict[str, int]) -> None:
    redis_client.hset(keys.counts(SLUG), mapping=fields)
    service.fresh_all()


def text_of(page: str, element_id: str) -> str:
    """The text inside the element with this id, as a browser runs it together:
    inline tags dropped, block tags a space, spaces collapsed."""
    match = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, element_id
    text = re.sub(r"</?(?:a|code|strong|span|em)\b[^>]*>", "", match.group(2))
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def percent(fraction: Fraction) -> str:
    """Two decimals, as the table shows a rate."""
    return f"{float(fraction * 100):.2f}%"


def test_the_table_shows_served_seen_and_both_rates(editor, new_client, service):  # noqa: F811
    # Readers through the real endpoints: served only; seen; seen and clicked;
    # seen, clicked and read (a quality click); clicked without a beacon.
    plan = [
        dict(seen=False, clicks=False, reads=False),
        dict(seen=True, clicks=False, reads=False),
        dict(seen=True, clicks=True, reads=False),
        dict(seen=True, clicks=True, reads=True),
        dict(seen=False, clicks=True, reads=True),
    ] * 3
    tally = {v: {"served": 0, "seen": 0, "clicks": 0, "quality": 0} for v in "abc"}
    for visit in plan:
        variant = reader_visits(new_client, **visit)
        tally[variant]["served"] += 1
        tally[variant]["seen"] += visit["seen"] or visit["clicks"]  # a click is seen too
        tally[variant]["clicks"] += visit["clicks"]
        tally[variant]["quality"] += visit["reads"]
    page = editor.get(f"/dashboard/{SLUG}").text
    assert text_of(page, "measures") == "Counting clicks per reader served (change)."
    for variant, counted in tally.items():
        served, seen = counted["served"], counted["seen"]
        assert text_of(page, f"served-{variant}") == str(served)
        assert text_of(page, f"clicks-{variant}") == str(counted["clicks"])
        assert text_of(page, f"quality-{variant}") == str(counted["quality"])
        if not served:
            assert text_of(page, f"seen-{variant}") == "0 —"
            continue
        share = Fraction(seen, served)
        assert text_of(page, f"seen-{variant}") == f"{seen} {float(share * 100):.0f}%"
        # Both rates per reader served; the click rate is the verdict's, with its interval.
        click_rate = text_of(page, f"click-rate-{variant}")
        assert click_rate.startswith(percent(Fraction(counted["clicks"], served)))
        assert text_of(page, f"quality-rate-{variant}") == percent(
            Fraction(counted["quality"], served)
        )
    assert text_of(page, "served-total") == "15"
    assert text_of(page, "seen-total") == "12 80%"
    assert text_of(page, "quality-total") == "6"
    assert text_of(page, "quality-rate-total") == percent(Fraction(6, 15))
    # Seen impressions are too few for the seen check: the table says they aren't measured.
    assert "Seen impressions are not measured on this story yet" in page
    assert 'id="seen-unmeasured"' not in page  # the verdict counts per reader served


def test_the_verdict_counts_what_the_editor_chose(
    editor,  # noqa: F811
    service,
    redis_client,
):
    write_counts(
        redis_client,
        service,
        {"i:a": 1000, "s:a": 300, "c:a": 60, "q:a": 10}
        | {"i:b": 1000, "s:b": 500, "c:b": 50, "q:b": 30}
        | {"i:c": 1000, "s:c": 400, "c:c": 40, "q:c": 20},
    )
    service.set_settings(SLUG, "clicks", 0.02, "editor", reward="quality", denominator="seen")
    page = editor.get(f"/dashboard/{SLUG}").text
    assert text_of(page, "measures") == "Counting quality clicks per reader who saw it (change)."
    assert text_of(page, "settings-measures") == "quality clicks per reader who saw it"
    assert 'id="settings-reward-quality" name="reward" value="quality" checked' in page
    assert 'id="settings-denominator-seen" name="denominator" value="seen" checked' in page
    # Per reader who saw it: the quality-click rate is the verdict's (with its
    # interval), the click rate beside it; the leader is B.
    for variant, seen, clicks, quality in (("a", 300, 60, 10), ("b", 500, 50, 30)):
        assert text_of(page, f"quality-rate-{variant}").startswith(percent(Fraction(quality, seen)))
        assert text_of(page, f"click-rate-{variant}") == percent(Fraction(clicks, seen))
    assert re.search(r'<td class="num ctr in-use" id="quality-rate-b">', page)
    assert "the verdict's" in text_of(page, "rate-head-quality")
    assert "the verdict's" not in text_of(page, "rate-head-click")
    assert re.search(r'<tr id="variant-b" class="leader', page)
    assert text_of(page, "click-rate-total") == percent(Fraction(150, 1200))
    assert "Counting quality clicks per reader who saw it." in editor.get(
        f"/dashboard/{SLUG}/decide?variant=b"
    ).get_data(True)
    # The list says so too, for a test that doesn't count every click per reader served.
    listing = editor.get("/dashboard/").get_data(True)
    assert "Counting quality clicks per reader who saw it." in listing
    service.set_settings(SLUG, "clicks", 0.02, "editor", reward="click", denominator="served")
    assert "Counting" not in editor.get("/dashboard/").get_data(True)


def test_a_headline_seen_by_fewer_of_its_readers_is_flagged(
    editor,  # noqa: F811
    service,
    redis_client,
):
    write_counts(
        redis_client,
        service,
        {"i:a": 2000, "s:a": 1040, "c:a": 60}
        | {"i:b": 2000, "s:b": 620, "c:b": 40}
        | {"i:c": 2000, "s:c": 1040, "c:c": 50},
    )
    page = editor.get(f"/dashboard/{SLUG}").text
    assert 'id="seen-warning-a"' not in page and 'id="seen-warning-c"' not in page
    # B: 620 / 2000 = 31%; A and C together: 2080 / 4000 = 52%.
    assert text_of(page, "seen-warning-b") == (
        "Where the slot sat: B's slot was seen by 31% of the readers it was served to, the "
        "other headlines' by 52%: a longer headline may push its slot below the fold. Its "
        "click rate per reader served is biased by where the slot sat, not by the headline; "
        "consider counting per reader who saw it. Change what counts"
    )
    assert text_of(page, "seen-share-b") == "31% flagged"
    assert "Seen impressions are not measured" not in page

    # Counting per reader who saw it: the warning says the verdict allows for it.
    service.set_settings(SLUG, "clicks", 0.02, "editor", denominator="seen")
    page = editor.get(f"/dashboard/{SLUG}").text
    assert text_of(page, "seen-warning-b").endswith(
        "The verdict counts per reader who saw the headline, which allows for where the slot sat."
    )
    assert 'id="seen-unmeasured"' not in page


def test_seen_counts_that_are_not_measured_are_said_to_need_the_snippet(
    editor,  # noqa: F811
    service,
    redis_client,
):
    # No beacons: the only seen impressions are the clickers'.
    write_counts(
        redis_client,
        service,
        {"i:a": 500, "s:a": 20, "c:a": 20, "i:b": 500, "s:b": 25, "c:b": 25}
        | {"i:c": 500, "s:c": 15, "c:c": 15},
    )
    page = editor.get(f"/dashboard/{SLUG}").text
    assert 'id="seen-unmeasured"' not in page
    service.set_settings(SLUG, "clicks", 0.02, "editor", denominator="seen")
    page = editor.get(f"/dashboard/{SLUG}").text
    words = text_of(page, "seen-unmeasured")
    assert words.startswith("Seen impressions are not being measured.")
    assert "the snippet (/abtest.js) or abtest's own pages" in words
    assert "count per reader served" in words
    assert not re.search(r'id="seen-warning-', page)


def test_the_settings_form_changes_the_reward_and_denominator_and_says_so(
    editor,  # noqa: F811
    service,
):
    page = editor.get(f"/dashboard/{SLUG}").text
    for field, value in (
        ("reward", "click"),
        ("reward", "quality"),
        ("denominator", "served"),
        ("denominator", "seen"),
    ):
        assert f'name="{field}" value="{value}"' in page
        # Each choice is explained in a line of its own, tied to its radio button.
        assert f'aria-describedby="settings-{field}-{value}-means"' in page
        assert text_of(page, f"settings-{field}-{value}-means")
    assert "15 seconds of reading" in text_of(page, "settings-reward-quality-means")

    response = post_action(
        editor, "settings", allocation="clicks", caring="2", reward="quality", denominator="seen"
    )
    assert response.status_code == 303
    experiment = service.store.get(SLUG)
    assert (experiment.reward, experiment.denominator) == ("quality", "seen")
    assert (experiment.allocation, experiment.caring) == ("clicks", 0.02)
    page = editor.get(response.headers["Location"]).text
    flash = text_of(page.replace('class="flash flash-success"', 'id="flash"'), "flash")
    assert flash == (
        "Settings changed: counting quality clicks per reader who saw it (was: clicks per "
        "reader served). Every count was kept, so the statistics and the verdict now read "
        "the whole test this way."
    )
    assert (
        "Maximize clicks, stop below 2%, counting clicks per reader served → Maximize clicks, "
        "stop below 2%, counting quality clicks per reader who saw it"
    ) in html.unescape(page)
    (entry,) = service.audit(SLUG)
    assert entry["settings"]["reward"] == "quality" and entry["editor"] == "editor"

    # Allocation and what counts at once: both said.
    response = post_action(
        editor, "settings", allocation="winner", caring="2", reward="click", denominator="seen"
    )
    page = editor.get(response.headers["Location"]).text
    assert "Settings changed: find the winner (was: maximize clicks); counting clicks per " in page
    assert "New readers are allocated this way from now on." in page
    # A form without the new fields (an older page, a script) keeps what counts.
    post_action(editor, "settings", allocation="clicks", caring="3")
    experiment = service.store.get(SLUG)
    assert (experiment.reward, experiment.denominator, experiment.caring) == ("click", "seen", 0.03)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"reward": "likes"}, "count every click or quality clicks"),
        ({"denominator": "everyone"}, "count per reader served or per reader who saw it"),
        ({"reward": "", "denominator": ""}, "count every click or quality clicks; count per"),
    ],
)
def test_the_settings_form_refuses_bad_measures(editor, service, fields, words):  # noqa: F811
    response = post_action(editor, "settings", allocation="clicks", caring="2", **fields)
    assert response.status_code == 400
    assert "Nothing changed" in response.text and words in html.unescape(response.text)
    experiment = service.store.get(SLUG)
    assert (experiment.reward, experiment.denominator) == ("click", "served")
    assert service.audit(SLUG) == []


def test_the_live_data_carries_the_new_numbers(editor, new_client, service):  # noqa: F811
    path = f"/dashboard/api/experiments/{SLUG}"
    before = editor.get(path).json
    variant = reader_visits(new_client, seen=True, clicks=True, reads=True)
    after = editor.get(path).json
    assert after["fragments"]["table"] != before["fragments"]["table"]
    assert text_of(after["fragments"]["table"], f"quality-{variant}") == "1"
    assert text_of(after["fragments"]["table"], f"seen-{variant}") == "1 100%"
    assert text_of(after["fragments"]["summary"], "measures").startswith("Counting clicks per")
    row = after["report"]["variants"]["abc".index(variant)]
    assert (row["served"], row["seen"], row["quality_clicks"]) == (1, 1, 1)
    assert after["report"]["seen_check"] == {"applies": False, "flagged": [], "p_values": None}


def test_the_counts_export_has_every_count(editor, service, redis_client):  # noqa: F811
    write_counts(
        redis_client,
        service,
        {"i:a": 100, "s:a": 60, "c:a": 6, "q:a": 2, "i:b": 90, "s:b": 50, "c:b": 5, "q:b": 4},
    )
    service.set_settings(SLUG, "clicks", 0.02, "editor", reward="quality")
    rows = parse_csv(editor.get(f"/dashboard/{SLUG}/counts.csv").text)
    got = [
        (row["served"], row["seen"], row["all_clicks"], row["quality_clicks"], row["clicks"])
        for row in rows
    ]
    assert got == [("100", "60", "6", "2", "2"), ("90", "50", "5", "4", "4"), ("0",) * 5]
    assert {(row["reward"], row["denominator"]) for row in rows} == {("quality", "served")}
