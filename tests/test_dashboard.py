"""The editor dashboard: sign-in, CSRF, the pages, the editor actions, the
new-experiment form, exports and the over-time series, against a real Redis.

Reader traffic goes through the real reader endpoints (``/`` and ``/c/``).
CSRF protection stays on: tokens are read from the rendered forms.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import math
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import HEADLINES, SLUG, story_headline, teasers, totals
from werkzeug.security import generate_password_hash

from abtest import chartdata, create_app
from abtest.dashboard.auth import safe_next

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse"
#: Any of the verdict's claims once readers have clicked.
VERDICT = re.compile(r"leads so far|is proven better than|perform about the same")


# -- helpers -------------------------------------------------------------------------


def csrf_token(client, path: str = "/dashboard/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return TOKEN.search(response.text).group(1)


def sign_in(client, username: str = "editor", password: str = PASSWORD):
    token = csrf_token(client)
    return client.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def signed_in_as(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("editor")


@pytest.fixture
def editor(client):
    response = sign_in(client)
    assert response.status_code == 303
    assert signed_in_as(client) == "editor"
    return client


def reader_traffic(new_client, visitors: int, click_every: int = 3) -> None:
    """New visitors on the front page; every ``click_every``-th clicks its headline."""
    for number in range(visitors):
        browser = new_client()
        ((link, _),) = teasers(browser.get("/", headers=BROWSER).data)
        if number % click_every == 0:
            assert browser.get(link, headers=BROWSER).status_code == 303


def status_of(service, slug: str = SLUG) -> tuple[str, str | None]:
    experiment = service.store.get(slug)
    return experiment.status, experiment.winner


def post_action(client, action: str, slug: str = SLUG, **data):
    token = csrf_token(client, f"/dashboard/{slug}")
    return client.post(f"/dashboard/{slug}/{action}", data={"csrf_token": token, **data})


def cell(html: str, element_id: str) -> str:
    """The text of the table cell with this id."""
    return re.search(rf'<td [^>]*id="{element_id}"[^>]*>([^<]*)</td>', html).group(1)


def parse_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# -- refused without a session ---------------------------------------------------------

PAGES = [
    "/dashboard/",
    "/dashboard/new",
    f"/dashboard/{SLUG}",
    f"/dashboard/{SLUG}/decide",
    f"/dashboard/{SLUG}/decide?variant=b",
    f"/dashboard/{SLUG}/counts.csv",
    f"/dashboard/{SLUG}/series.csv",
    f"/dashboard/{SLUG}/export.json",
    "/dashboard/no-such-story",
    "/dashboard/archived",
    "/dashboard/front-page",
    f"/dashboard/{SLUG}/edit",
    f"/dashboard/{SLUG}/preview",
    f"/dashboard/{SLUG}/preview?variant=b&page=story",
]
APIS = [
    "/dashboard/api/experiments",
    f"/dashboard/api/experiments/{SLUG}",
    "/dashboard/api/experiments/no-such-story",
]
ACTIONS = [
    f"/dashboard/{SLUG}/decide",
    f"/dashboard/{SLUG}/pause",
    f"/dashboard/{SLUG}/resume",
    f"/dashboard/{SLUG}/reopen",
    f"/dashboard/{SLUG}/settings",
    f"/dashboard/{SLUG}/edit",
    f"/dashboard/{SLUG}/start",
    f"/dashboard/{SLUG}/schedule",
    f"/dashboard/{SLUG}/unschedule",
    f"/dashboard/{SLUG}/archive",
    f"/dashboard/{SLUG}/unarchive",
    f"/dashboard/{SLUG}/move",
    "/dashboard/new",
    "/dashboard/logout",
    "/dashboard/data-loss/acknowledge",
    f"/dashboard/{SLUG}/webhook",
]


def test_every_dashboard_route_is_covered_by_these_tests(app):
    """A new route can't slip past the refusal tests below."""
    covered = {path.split("?")[0] for path in PAGES + APIS + ACTIONS}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("dashboard.") or rule.endpoint in (
            "dashboard.login",
            "dashboard.static",
        ):
            continue
        path = rule.rule.replace("<slug>", SLUG)
        assert path in covered, f"{rule.rule} has no refusal test"


@pytest.mark.parametrize("path", PAGES)
def test_pages_redirect_to_sign_in_without_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/dashboard/login"
    assert parse_qs(location.query)["next"] == [path]


@pytest.mark.parametrize("path", APIS)
def test_dashboard_api_answers_401_without_a_session(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.is_json and "sign in" in response.json["error"]
    assert "variants" not in response.text


@pytest.mark.parametrize("path", ACTIONS)
def test_actions_without_a_session_change_nothing(client, service, path):
    # Without a token: 400 from CSRF protection.
    assert client.post(path, data={"variant": "b"}).status_code == 400
    # With a genuine token from the sign-in page, but not signed in: sent to sign in.
    token = csrf_token(client)
    response = client.post(
        path,
        data={
            "variant": "b",
            "csrf_token": token,
            "slug": "sneaky",
            "title": "T",
            "headlines": "x\ny",
            "body": "z",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/dashboard/login")
    assert status_of(service) == ("running", None)
    assert service.audit(SLUG) == []
    assert service.store.get("sneaky") is None


def test_a_reader_with_a_visitor_cookie_is_not_an_editor(client, service):
    client.get("/", headers=BROWSER)
    assert client.get("/dashboard/").status_code == 302
    assert client.get(f"/dashboard/api/experiments/{SLUG}").status_code == 401
    assert client.get(f"/api/v1/experiments/{SLUG}/stats").status_code == 401


def test_a_forged_session_cookie_is_refused(client):
    client.set_cookie("session", "eyJlZGl0b3IiOiJlZGl0b3IifQ.forged.signature")
    assert client.get("/dashboard/").status_code == 302
    assert client.get("/dashboard/api/experiments").status_code == 401


def test_static_files_and_sign_in_page_need_no_session(client):
    for name in ("dashboard.css", "dashboard.js", "favicon.svg"):
        with client.get(f"/dashboard/static/{name}") as response:  # closes the file
            assert response.status_code == 200
    page = client.get("/dashboard/login")
    assert page.status_code == 200
    assert 'name="password"' in page.text and TOKEN.search(page.text)


# -- signing in and out ------------------------------------------------------------------


def test_sign_in_then_the_stats_api_works_with_the_session(client):
    assert client.get(f"/api/v1/experiments/{SLUG}/stats").status_code == 401
    response = sign_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard/"
    stats = client.get(f"/api/v1/experiments/{SLUG}/stats")
    assert stats.status_code == 200
    assert stats.json["experiment"] == SLUG
    assert [row["headline"] for row in stats.json["variants"]] == list(HEADLINES)


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("editor", "wrong horse"),
        ("editor", ""),
        ("nobody", PASSWORD),
        ("", PASSWORD),
        ("Editor", PASSWORD),
    ],
)
def test_bad_sign_in_is_refused(client, username, password):
    response = sign_in(client, username, password)
    assert response.status_code == 401
    assert "match an editor account" in response.text
    assert signed_in_as(client) is None
    assert client.get("/dashboard/").status_code == 302


def test_repeated_failures_lock_that_name_out_for_a_while(client, new_client):
    for _ in range(10):
        assert sign_in(client, "editor", "guess").status_code == 401
    locked = sign_in(client, "editor", PASSWORD)  # even the right password, for now
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert "Try again in 15 minutes" in locked.text
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert signed_in_as(client) is None
    # The lock is per name and address: another editor name is not affected.
    assert sign_in(new_client(), "nobody", "guess").status_code == 401


def test_sign_in_page_explains_when_no_editor_is_configured(settings, redis_client):
    bare = dataclasses.replace(settings, editor_user=None, editor_password_hash=None)
    app = create_app(bare, redis=redis_client)
    try:
        client = app.test_client()
        assert "No editor accounts are set up yet" in client.get("/dashboard/login").text
        assert sign_in(client, "editor", PASSWORD).status_code == 401
    finally:
        app.extensions["abtest"]["service"].stop()


def test_session_cookie_is_httponly_and_samesite(client):
    response = sign_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_returns_to_the_page_asked_for(client):
    first = client.get(f"/dashboard/{SLUG}?every=2")
    target = first.headers["Location"]
    page = client.get(target)
    token = TOKEN.search(page.text).group(1)
    assert 'name="next" value="/dashboard/colombia-china?every=2"' in page.text
    response = client.post(
        "/dashboard/login",
        data={
            "username": "editor",
            "password": PASSWORD,
            "csrf_token": token,
            "next": f"/dashboard/{SLUG}?every=2",
        },
    )
    assert response.headers["Location"] == f"/dashboard/{SLUG}?every=2"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/dashboard\n/x",
        "",
    ],
)
def test_sign_in_never_redirects_off_site(client, target):
    token = csrf_token(client)
    response = client.post(
        "/dashboard/login",
        data={"username": "editor", "password": PASSWORD, "csrf_token": token, "next": target},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard/"
    assert safe_next(target, "/d") == "/d"


def test_sign_out_ends_the_session(editor):
    token = csrf_token(editor, "/dashboard/")
    response = editor.post("/dashboard/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert signed_in_as(editor) is None
    assert editor.get("/dashboard/").status_code == 302


def test_editors_from_the_users_file(settings, redis_client, tmp_path):
    users = tmp_path / "editors"
    alice = generate_password_hash("alice's secret", method="pbkdf2:sha256:1000")
    users.write_text(f"# newsroom editors\n\nalice:{alice}\nnot a user line\nbob:\n")
    app = create_app(dataclasses.replace(settings, users_file=users), redis=redis_client)
    app.config["TESTING"] = True
    try:
        client = app.test_client()
        assert sign_in(client, "alice", "alice's secret").status_code == 303
        assert signed_in_as(client) == "alice"
        assert sign_in(app.test_client(), "bob", "").status_code == 401
        # The editor from the environment still works alongside the file.
        assert sign_in(app.test_client(), "editor", PASSWORD).status_code == 303
        assert client.get("/dashboard/").status_code == 200
        # Removing alice from the file ends her open session at the next request.
        users.write_text("# alice has left\n")
        assert client.get("/dashboard/").status_code == 302
        assert client.get("/dashboard/api/experiments").status_code == 401
    finally:
        app.extensions["abtest"]["service"].stop()


# -- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token", "IjQ2YzE.Zm9v.YmFy"])
@pytest.mark.parametrize("action", ["pause", "decide"])
def test_a_missing_or_forged_csrf_token_changes_nothing(editor, service, token, action):
    data = {"variant": "b"}
    if token is not None:
        data["csrf_token"] = token
    response = editor.post(f"/dashboard/{SLUG}/{action}", data=data)
    assert response.status_code == 400
    assert "Nothing was changed" in response.text and "Traceback" not in response.text
    assert status_of(service) == ("running", None)
    assert service.audit(SLUG) == []


def test_every_state_changing_route_is_the_dashboards(app):
    # CSRF is checked by the dashboard blueprint's hook (readers' GETs skip it):
    # a POST, PUT, PATCH or DELETE route anywhere else would go unprotected.
    changing = {"POST", "PUT", "PATCH", "DELETE"}
    routes = [rule for rule in app.url_map.iter_rules() if rule.methods & changing]
    assert routes, "the dashboard's forms are routes too"
    # The API's actions take the Bearer token only, never a cookie: no CSRF
    # can ride on them (tests/test_api.py refuses them an editor's session).
    token_only = {"api.pause", "api.resume", "api.decide", "api.reopen"}
    # The readers' beacons count only for the visitor cookie, SameSite=Lax, which
    # no other site's POST carries (and the seen beacon's tokens must match it).
    beacons = {"api.seen", "api.engaged"}
    for rule in routes:
        assert rule.endpoint.startswith("dashboard.") or rule.endpoint in token_only | beacons, rule


def test_a_token_from_another_session_is_refused(editor, new_client, service):
    other = new_client()
    sign_in(other)
    token = csrf_token(other, f"/dashboard/{SLUG}")
    response = editor.post(f"/dashboard/{SLUG}/pause", data={"csrf_token": token})
    assert response.status_code == 400
    assert status_of(service) == ("running", None)


def test_sign_in_sign_out_and_create_need_a_token(client, service):
    response = client.post("/dashboard/login", data={"username": "editor", "password": PASSWORD})
    assert response.status_code == 400 and signed_in_as(client) is None
    sign_in(client)
    response = client.post(
        "/dashboard/new",
        data={"slug": "no-token", "title": "T", "headlines": "One\nTwo", "body": "Text."},
    )
    assert response.status_code == 400
    assert service.store.get("no-token") is None
    assert client.post("/dashboard/logout").status_code == 400
    assert signed_in_as(client) == "editor"


# -- the pages ---------------------------------------------------------------------------


def test_experiments_list_shows_status_leader_counts_and_verdict(editor, new_client, service):
    reader_traffic(new_client, 12, click_every=2)
    page = editor.get("/dashboard/")
    assert page.status_code == 200
    impressions, clicks = totals(service)
    assert "Running" in page.text
    assert f">{sum(impressions):,}<" in page.text and f">{sum(clicks):,}<" in page.text
    assert re.search(VERDICT, page.text)
    report = service.report(SLUG)
    assert report.headlines[report.stats.leader()] in page.text
    data = editor.get("/dashboard/api/experiments").json
    (row,) = data["experiments"]
    assert row["slug"] == SLUG and row["status"] == "running"
    assert row["impressions"] == f"{sum(impressions):,}"
    assert "list" in data["fragments"]


def test_experiment_page_renders_table_tests_and_charts_without_javascript(
    editor, new_client, service
):
    reader_traffic(new_client, 15, click_every=2)
    page = editor.get(f"/dashboard/{SLUG}")
    assert page.status_code == 200
    impressions, clicks = totals(service)
    for index, variant in enumerate("abc"):
        assert cell(page.text, f"served-{variant}") == f"{impressions[index]:,}"
        assert cell(page.text, f"clicks-{variant}") == f"{clicks[index]:,}"
        assert HEADLINES[index] in page.text
    assert cell(page.text, "served-total") == f"{sum(impressions):,}"
    assert "anytime interval" in page.text and "clicks per 1,000 readers" in page.text
    assert "fixed-sample tests, for reference" in page.text
    assert "P(best)" in page.text and "Share of traffic" in page.text
    assert "Pearson chi-square" in page.text and "Holm" in page.text
    for chart in ("chart-ctr", "chart-share", "chart-posterior"):
        assert f'<svg class="chart" id="{chart}"' in page.text
    assert "Time (UTC)" in page.text and "Click-through rate" in page.text
    assert "Probability density" in page.text and "Share of new readers" in page.text
    assert "<script src=" in page.text and "cdn" not in page.text.lower()
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert ' style="' not in page.text  # the CSP forbids inline styles


def test_live_endpoint_sends_the_stats_and_rerendered_fragments(editor, new_client, service):
    first = editor.get(f"/dashboard/api/experiments/{SLUG}").json
    reader_traffic(new_client, 6)
    second = editor.get(f"/dashboard/api/experiments/{SLUG}").json
    impressions, _ = totals(service)
    assert [row["impressions"] for row in second["report"]["variants"]] == list(impressions)
    assert set(second["fragments"]) == {"summary", "table", "tests", "charts", "audit", "lifecycle"}
    assert cell(second["fragments"]["table"], "served-total") == f"{sum(impressions):,}"
    assert first["fragments"]["table"] != second["fragments"]["table"]
    assert second["updated_at"].endswith("+00:00") and second["updated_at_text"].endswith("UTC")
    assert VERDICT.search(second["verdict"]) or "No clicks" in second["verdict"]
    assert second["report"]["decision"]["leader"] in ("a", "b", "c")


def test_page_polls_at_the_configured_interval(app, editor):
    assert 'data-refresh-seconds="5.0"' in editor.get(f"/dashboard/{SLUG}").text
    page = editor.get(f"/dashboard/{SLUG}?every=0.5").text
    assert 'data-refresh-seconds="0.5"' in page
    assert f'data-live-url="/dashboard/api/experiments/{SLUG}?every=0.5"' in page
    assert 'data-refresh-seconds="0.5"' in editor.get(f"/dashboard/{SLUG}?every=0.01").text
    for junk in ("nan", "inf", "soon", "-3"):
        assert editor.get(f"/dashboard/{SLUG}?every={junk}").status_code == 200
    assert 'data-refresh-seconds="5.0"' in editor.get(f"/dashboard/{SLUG}?every=nan").text


def test_unknown_experiment_is_a_clean_404(editor):
    page = editor.get("/dashboard/no-such-story")
    assert page.status_code == 404 and "no-such-story" in page.text and "Traceback" not in page.text
    api = editor.get("/dashboard/api/experiments/no-such-story")
    assert api.status_code == 404 and api.is_json
    assert editor.get("/dashboard/no-such-story/series.csv").status_code == 404


def test_output_is_escaped(editor, service):
    token = csrf_token(editor, "/dashboard/new")
    nasty = '<script>alert("x")</script>'
    response = editor.post(
        "/dashboard/new",
        data={
            "csrf_token": token,
            "slug": "escape-test",
            "title": f"<b>{nasty}</b>",
            "headlines": f"{nasty}\nPlain & simple",
            "body": f"First {nasty}",
        },
    )
    assert response.status_code == 303
    for text in (
        editor.get("/dashboard/escape-test").text,
        editor.get("/dashboard/").text,
        json.dumps(editor.get("/dashboard/api/experiments/escape-test").json["fragments"]),
    ):
        assert "<script>alert" not in text
        assert "&lt;script&gt;" in text
    # The form echoes bad input escaped too.
    token = csrf_token(editor, "/dashboard/new")
    page = editor.post(
        "/dashboard/new",
        data={"csrf_token": token, "slug": nasty, "title": nasty, "headlines": nasty, "body": ""},
    )
    assert page.status_code == 422 and "<script>alert" not in page.text


# -- editor actions -----------------------------------------------------------------------


def test_choosing_the_winner_through_the_confirmation(editor, new_client, service):
    reader_traffic(new_client, 12)
    before = totals(service)
    confirm = editor.get(f"/dashboard/{SLUG}/decide?variant=b")
    assert confirm.status_code == 200
    assert "Choose B as the winner?" in confirm.text
    assert "Current verdict:" in confirm.text
    assert "Warning: B may not be the best headline." in confirm.text
    assert "The test has not proven B better than" in confirm.text
    assert "If it isn&#39;t, choosing it costs" in confirm.text
    assert HEADLINES[1] in confirm.text
    assert status_of(service) == ("running", None)  # looking is not deciding

    token = TOKEN.findall(confirm.text)[-1]
    response = editor.post(f"/dashboard/{SLUG}/decide", data={"csrf_token": token, "variant": "b"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/dashboard/{SLUG}"
    assert status_of(service) == ("decided", "b")

    (entry,) = service.audit(SLUG)
    assert entry["action"] == "decide" and entry["editor"] == "editor" and entry["winner"] == "b"
    assert [row["impressions"] for row in entry["stats"]["variants"]] == list(before[0])
    assert [row["clicks"] for row in entry["stats"]["variants"]] == list(before[1])

    page = editor.get(response.headers["Location"]).text
    assert "B is the winner" in page and "Decided" in page
    assert "Chose B as the winner" in page and "editor" in page
    assert f"{sum(before[0]):,}" in page

    # Every reader now gets B, and nothing is counted any more.
    for _ in range(3):
        ((_, headline),) = teasers(new_client().get("/", headers=BROWSER).data)
        assert headline == HEADLINES[1]
    assert totals(service) == before
    # Deciding again is refused until the test is reopened.
    again = post_action(editor, "decide", variant="a")
    assert again.status_code == 303
    assert status_of(service) == ("decided", "b") and len(service.audit(SLUG)) == 1


def test_confirmation_without_warning_when_proven(editor, service):
    # A clear result written straight into Redis (as if many readers had come).
    store = service.store
    store.record_impressions([(SLUG, "a")] * 1500 + [(SLUG, "b")] * 1500 + [(SLUG, "c")] * 1500)
    for variant, count in (("a", 30), ("b", 120), ("c", 35)):
        for number in range(count):
            assert store.record_click(SLUG, variant, f"{variant}{number}", 3600).counted
    page = editor.get(f"/dashboard/{SLUG}/decide?variant=b").text
    assert "Warning" not in page
    assert "B is proven better than every other headline." in page
    assert "Current verdict: B is proven better than A and C." in page
    assert "Safe to stop: choosing B now costs" in page
    # Choosing a trailing headline warns, and names the proven winner.
    page = editor.get(f"/dashboard/{SLUG}/decide?variant=a").text
    assert "Warning: A may not be the best headline." in page
    assert "B is proven better than every other headline." in page


def test_decide_refuses_an_unknown_variant(editor, service):
    response = post_action(editor, "decide", variant="z")
    assert response.status_code == 303
    assert status_of(service) == ("running", None)
    assert "Pick one of the headlines" in editor.get(f"/dashboard/{SLUG}").text


def test_pause_resume_reopen_through_the_ui_are_audited(editor, new_client, service):
    reader_traffic(new_client, 6)
    post_action(editor, "pause")
    assert status_of(service) == ("paused", None)
    page = editor.get(f"/dashboard/{SLUG}").text
    assert "Paused. Every reader gets headline A" in page and 'id="resume"' in page

    counted = totals(service)
    for _ in range(3):
        story = new_client().get(f"/articles/{SLUG}", headers=BROWSER)
        assert story_headline(story.data) == HEADLINES[0]
    assert totals(service) == counted

    post_action(editor, "resume")
    assert status_of(service) == ("running", None)
    post_action(editor, "decide", variant="c")
    assert status_of(service) == ("decided", "c")
    post_action(editor, "reopen")
    assert status_of(service) == ("running", None)

    audit = service.audit(SLUG)
    assert [entry["action"] for entry in audit] == ["reopen", "decide", "resume", "pause"]
    assert {entry["editor"] for entry in audit} == {"editor"}
    page = editor.get(f"/dashboard/{SLUG}").text
    for words in ("Paused", "Resumed", "Chose C as the winner", "Reopened", "running → paused"):
        assert words in page


def test_an_action_that_does_not_apply_changes_nothing(editor, service):
    response = post_action(editor, "resume")  # it is running, not paused
    assert response.status_code == 303
    assert status_of(service) == ("running", None)
    assert service.audit(SLUG) == []
    assert (
        "Nothing changed: only a paused test can be resumed."
        in editor.get(f"/dashboard/{SLUG}").text
    )


# -- new experiments ----------------------------------------------------------------------


def new_experiment(client, **fields):
    token = csrf_token(client, "/dashboard/new")
    data = {
        "slug": "budget-vote",
        "title": "Budget vote tonight",
        "headlines": "Budget passes\nBudget squeaks through",
        "body": "The council voted.",
        "csrf_token": token,
    }
    data.update(fields)
    return client.post("/dashboard/new", data=data)


def test_create_form_makes_a_running_experiment(editor, service):
    response = new_experiment(
        editor,
        headlines="  Budget passes  \n\nBudget squeaks through\n   \nCouncil splits on budget\n",
        body="The council voted late.\nVery late.\n\nThe mayor was pleased.",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard/budget-vote"
    experiment = service.store.get("budget-vote")
    assert experiment.status == "running"
    assert experiment.definition.headlines == (
        "Budget passes",
        "Budget squeaks through",
        "Council splits on budget",
    )
    assert experiment.definition.body == (
        "The council voted late. Very late.",
        "The mayor was pleased.",
    )
    page = editor.get(response.headers["Location"]).text
    assert "Created with 3 headlines" in page and "Council splits on budget" in page


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"slug": "Not A Slug!"}, "slug", "lowercase letters"),
        ({"slug": SLUG}, "slug", "is taken"),
        ({"slug": "new"}, "slug", "dashboard address"),
        ({"title": "   "}, "title", "give the story a title"),
        ({"headlines": "Only one"}, "headlines", "2 to 26 headlines"),
        ({"headlines": "\n".join(f"Headline {n}" for n in range(27))}, "headlines", "not 27"),
        ({"headlines": "Same\nSame"}, "headlines", "differ"),
        ({"body": "  \n\n "}, "body", "at least one paragraph"),
    ],
)
def test_create_form_shows_errors_next_to_the_field(editor, service, fields, field, message):
    response = new_experiment(editor, **fields)
    assert response.status_code == 422
    error = re.search(rf'<p class="field-error" id="{field}-error">([^<]+)</p>', response.text)
    assert error, response.text
    assert message.lower() in error.group(1).lower()
    assert f'aria-describedby="{field}-error"' in response.text
    # What the editor typed is kept.
    assert "Budget" in response.text
    if fields.get("slug") != SLUG:
        assert service.store.get(fields.get("slug", "budget-vote")) is None


def test_create_form_reports_several_errors_at_once(editor):
    response = new_experiment(editor, slug="", title="", headlines="", body="")
    assert response.status_code == 422
    for field in ("slug", "title", "headlines", "body"):
        assert f'id="{field}-error"' in response.text


def test_create_form_offers_both_modes_and_creates_with_the_chosen_one(editor, service):
    page = editor.get("/dashboard/new").text
    assert 'name="allocation" value="clicks" checked' in page
    assert 'name="allocation" value="winner"' in page
    assert "Find the winner" in page and "per 200,000 readers" in page
    assert 'id="caring" name="caring" value="2"' in page
    response = new_experiment(editor, allocation="winner", caring=" 0,5 % ")
    assert response.status_code == 303
    experiment = service.store.get("budget-vote")
    assert (experiment.allocation, experiment.caring) == ("winner", 0.005)
    page = editor.get(response.headers["Location"]).text
    assert 'id="settings-allocation">Find the winner<' in page
    assert 'id="settings-caring-now">0.5%<' in page
    # Left out altogether (an older form): the defaults.
    assert new_experiment(editor, slug="plain").status_code == 303
    plain = service.store.get("plain")
    assert (plain.allocation, plain.caring) == ("clicks", 0.02)


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        # No radio button of the form sends these: a forged or broken request.
        ({"allocation": "fastest"}, "allocation", 400),
        ({"allocation": ""}, "allocation", 400),
        # Typed by the editor: theirs to fix.
        ({"caring": "0"}, "caring", 422),
        ({"caring": "100"}, "caring", 422),
        ({"caring": "-1"}, "caring", 422),
        ({"caring": "lots"}, "caring", 422),
        ({"caring": "nan"}, "caring", 422),
        ({"caring": ""}, "caring", 422),
    ],
)
def test_create_form_refuses_bad_settings_next_to_the_field(editor, service, fields, field, status):
    response = new_experiment(editor, title="", **fields)
    assert response.status_code == status
    assert f'id="{field}-error"' in response.text
    assert 'id="title-error"' in response.text  # with the definition's errors, at once
    assert service.store.get("budget-vote") is None


def text_of(page: str, element_id: str) -> str:
    """The text inside the element with this id, tags dropped and spaces collapsed."""
    inner = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|span|strong|legend)>', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inner.group(1))).split())


def test_create_form_offers_what_counts_with_a_line_on_each_choice(editor):
    page = editor.get("/dashboard/new").text
    assert text_of(page, "reward") == "A response is"  # the group's legend
    assert text_of(page, "denominator") == "Rates are per"
    for field, value, checked in (
        ("reward", "click", True),
        ("reward", "quality", False),
        ("denominator", "served", True),
        ("denominator", "seen", False),
    ):
        radio = re.search(rf'<input type="radio" id="{field}-{value}" [^>]*>', page).group(0)
        assert f'name="{field}" value="{value}"' in radio
        assert (" checked" in radio) is checked
        # Each choice is explained in a line of its own, tied to its radio button.
        assert f'aria-describedby="{field}-{value}-means"' in radio
        assert text_of(page, f"{field}-{value}-means")
    assert "15 seconds of reading" in text_of(page, "reward-quality-means")
    assert "below the fold" in text_of(page, "denominator-seen-means")


@pytest.mark.parametrize(
    ("then", "reward", "denominator"),
    [
        ("start", "quality", "seen"),
        ("start", "click", "seen"),
        ("draft", "quality", "served"),
        ("start", "click", "served"),
    ],
)
def test_create_form_creates_with_the_chosen_measures(editor, service, then, reward, denominator):
    response = new_experiment(editor, then=then, reward=reward, denominator=denominator)
    assert response.status_code == 303
    experiment = service.fresh("budget-vote")  # read back from Redis now
    assert (experiment.reward, experiment.denominator) == (reward, denominator)
    assert experiment.status == ("draft" if then == "draft" else "running")
    document = service.report("budget-vote").to_json()  # what the statistics count
    assert (document["reward"], document["denominator"]) == (reward, denominator)
    page = editor.get(response.headers["Location"]).text
    assert f'id="settings-reward-{reward}" name="reward" value="{reward}" checked' in page
    assert (
        f'id="settings-denominator-{denominator}" name="denominator" value="{denominator}" checked'
        in page
    )


def test_create_form_without_the_measures_counts_clicks_per_reader_served(editor, service):
    """A form sent without them (an older page, a script) gets the defaults."""
    assert new_experiment(editor).status_code == 303
    experiment = service.fresh("budget-vote")
    assert (experiment.reward, experiment.denominator) == ("click", "served")
    assert new_experiment(editor, slug="only-reward", reward="quality").status_code == 303
    experiment = service.fresh("only-reward")
    assert (experiment.reward, experiment.denominator) == ("quality", "served")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"reward": "likes"}, {"reward": "Count every click or quality clicks."}),
        ({"reward": ""}, {"reward": "Count every click or quality clicks."}),
        ({"reward": "Quality"}, {"reward": "Count every click or quality clicks."}),
        (
            {"denominator": "everyone"},
            {"denominator": "Count per reader served or per reader who saw it."},
        ),
        (
            {"reward": "likes", "denominator": "seen ", "title": ""},
            {
                "reward": "Count every click or quality clicks.",
                "denominator": "Count per reader served or per reader who saw it.",
                "title": "Give the story a title.",
            },
        ),
    ],
)
def test_create_form_refuses_forged_measures_next_to_the_field(editor, service, fields, errors):
    response = new_experiment(editor, **{"reward": "quality", "denominator": "seen", **fields})
    assert response.status_code == 400
    shown = dict(
        re.findall(r'<p class="field-error" id="([a-z_]+)-error">([^<]+)</p>', response.text)
    )
    assert shown == errors
    for field in ("reward", "denominator"):
        described = f'<fieldset class="choices" id="{field}" aria-describedby="{field}-error">'
        assert (described in response.text) is (field in errors)
    # The form comes back as sent: what was typed, and a measure that was fine stays chosen.
    assert "Budget squeaks through" in response.text
    if "denominator" not in errors:
        assert 'id="denominator-seen" name="denominator" value="seen" checked' in response.text
    assert service.store.get("budget-vote") is None
    assert service.store.slugs() == [SLUG]


def test_settings_form_changes_mode_and_threshold_and_is_audited(editor, service):
    page = editor.get(f"/dashboard/{SLUG}").text
    assert 'id="settings-allocation">Maximize clicks<' in page
    assert 'id="settings-caring-now">2%<' in page
    response = post_action(editor, "settings", allocation="winner", caring="1.5")
    assert response.status_code == 303
    experiment = service.store.get(SLUG)
    assert (experiment.allocation, experiment.caring) == ("winner", 0.015)
    assert status_of(service) == ("running", None)
    page = editor.get(response.headers["Location"]).text
    assert "Settings changed: find the winner" in page
    assert 'id="settings-allocation">Find the winner<' in page
    assert "Changed the settings" in page
    assert "Maximize clicks, stop below 2% → Find the winner, stop below 1.5%" in page
    (entry,) = service.audit(SLUG)
    assert entry["action"] == "settings" and entry["editor"] == "editor"
    # The same again changes nothing and says so.
    page = editor.get(
        post_action(editor, "settings", allocation="winner", caring="1.5").headers["Location"]
    ).text
    assert "Nothing changed: the test has these settings already" in page
    assert len(service.audit(SLUG)) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"allocation": "fastest", "caring": "2"},
        {"allocation": "winner", "caring": "0"},
        {"allocation": "winner", "caring": "150"},
        {"allocation": "winner", "caring": "two"},
    ],
)
def test_settings_form_refuses_bad_values(editor, service, fields):
    response = post_action(editor, "settings", **fields)
    assert response.status_code == 400
    assert "Nothing changed" in response.text and "Traceback" not in response.text
    experiment = service.store.get(SLUG)
    assert (experiment.allocation, experiment.caring) == ("clicks", 0.02)
    assert service.audit(SLUG) == []


def test_settings_of_an_unknown_experiment_is_a_404(editor):
    token = csrf_token(editor, f"/dashboard/{SLUG}")
    response = editor.post(
        "/dashboard/no-such-story/settings",
        data={"csrf_token": token, "allocation": "winner", "caring": "2"},
    )
    assert response.status_code == 404


# -- exports and the time series -------------------------------------------------------------


def test_export_counts_csv_and_json(editor, new_client, service):
    reader_traffic(new_client, 15, click_every=2)
    impressions, clicks = totals(service)

    response = editor.get(f"/dashboard/{SLUG}/counts.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="{SLUG}-counts-'
    )
    rows = parse_csv(response.text)
    assert [row["variant"] for row in rows] == ["a", "b", "c"]
    assert [row["headline"] for row in rows] == list(HEADLINES)
    assert [int(row["impressions"]) for row in rows] == list(impressions)
    assert [int(row["clicks"]) for row in rows] == list(clicks)
    for row, shown, clicked in zip(rows, impressions, clicks, strict=True):
        assert math.isclose(float(row["ctr"]), clicked / shown if shown else 0.0)

    response = editor.get(f"/dashboard/{SLUG}/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    document = json.loads(response.text)
    assert [row["impressions"] for row in document["stats"]["variants"]] == list(impressions)
    assert document["series"]["resolution"] == "minute"
    assert document["audit"] == []


def test_series_counts_per_interval_sum_to_the_totals(editor, new_client, service):
    reader_traffic(new_client, 20, click_every=2)
    impressions, clicks = totals(service)
    assert sum(impressions) == 20 and sum(clicks) == 10

    for resolution in ("minute", "hour"):
        series = json.loads(
            editor.get(f"/dashboard/{SLUG}/export.json?resolution={resolution}").text
        )["series"]
        assert series["interval_seconds"] == (60 if resolution == "minute" else 3600)
        assert series["points"], resolution
        for index in range(3):
            assert sum(p["impressions"][index] for p in series["points"]) == impressions[index]
            assert sum(p["clicks"][index] for p in series["points"]) == clicks[index]

        rows = parse_csv(editor.get(f"/dashboard/{SLUG}/series.csv?resolution={resolution}").text)
        for index, variant in enumerate("abc"):
            mine = [row for row in rows if row["variant"] == variant]
            assert sum(int(row["impressions"]) for row in mine) == impressions[index]
            assert sum(int(row["clicks"]) for row in mine) == clicks[index]
            assert all(int(row["interval_seconds"]) == series["interval_seconds"] for row in mine)

    # The charts' cumulative line ends exactly at the totals.
    experiment = service.store.get(SLUG)
    timeline = chartdata.build_timeline(
        service.series(SLUG), created_at=experiment.created_at, now=service.clock(), counting=True
    )
    _, last_impressions, last_clicks = timeline.cumulative()[-1]
    assert last_impressions == impressions and last_clicks == clicks
    assert editor.get(f"/dashboard/{SLUG}/series.csv?resolution=day").status_code == 400


def test_csv_export_defuses_spreadsheet_formulas(editor):
    new_experiment(editor, slug="formulas", headlines='=HYPERLINK("http://x")\n+1 for budget')
    rows = parse_csv(editor.get("/dashboard/formulas/counts.csv").text)
    assert [row["headline"] for row in rows] == ['\'=HYPERLINK("http://x")', "'+1 for budget"]


def test_every_id_on_the_editors_pages_is_unique(editor, service):
    from abtest.model import DRAFT, Definition

    draft = Definition(slug="a-draft", title="Draft", headlines=("One", "Two"), body=("T.",))
    assert service.create(draft, status=DRAFT)
    for path in ("/dashboard/", f"/dashboard/{SLUG}", "/dashboard/a-draft", "/dashboard/new"):
        page = editor.get(path).get_data(True)
        ids = re.findall(r'\sid="([^"]+)"', page)
        twice = sorted({i for i in ids if ids.count(i) > 1})
        assert ids and not twice, (path, twice)
