"""Health checks and the data-loss watch, against the suite's real Redis.

The watch's background thread is exercised under a real ``abtest serve`` in
tests/test_supervision.py; here each look is driven by the test (``check()``).
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import re
import time
import urllib.parse
import urllib.request

import pytest
from helpers import HEADLINES, SLUG, teasers
from serving import OwnRedis, Serve, answers, wait_until

from abtest import create_app, keys
from abtest.model import Definition
from abtest.store import connect
from abtest.watch import Watch, watch

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
WARNING = "Redis lost its data"


@pytest.fixture
def dead_app(settings, tmp_path):
    """An app whose Redis is a socket nobody listens on."""
    dead = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    app = create_app(settings, redis=dead)
    yield app
    app.extensions["abtest"]["service"].stop()


def other_process(app, redis_url) -> Watch:
    """Another process's watch on the same Redis (its own connection, its own memory)."""
    settings = app.extensions["abtest"]["settings"]
    return watch(create_app(settings, redis=connect(redis_url, timeout=5)))


# -- live and ready -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz/live", "/healthz"])
def test_live_answers_while_redis_is_away(dead_app, path):
    response = dead_app.test_client().get(path)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_ready_answers_503_with_the_reason_while_redis_is_away(dead_app):
    response = dead_app.test_client().get("/healthz/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["reason"].startswith("redis:")


def test_ready_when_redis_answers_and_the_stories_are_there(client):
    response = client.get("/healthz/ready")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "redis": "ok"}


def test_not_ready_without_the_seed_story(client, redis_client):
    redis_client.flushdb()
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert "seed story" in response.get_json()["reason"]


def test_not_ready_once_redis_lost_the_marker_this_process_knew(app, client, redis_client):
    watcher = watch(app)
    watcher.check()
    assert client.get("/healthz/ready").status_code == 200
    redis_client.delete(keys.INSTANCE)  # data lost, the seed still there
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert "lost its data" in response.get_json()["reason"]
    watcher.check()
    assert client.get("/healthz/ready").status_code == 200


# -- the watch ----------------------------------------------------------------------


def test_the_first_look_writes_the_marker_and_records_no_loss(app, redis_client):
    watcher = watch(app)
    watcher.check()
    assert watcher.instance == redis_client.get(keys.INSTANCE) is not None
    assert watcher.lost is None and not redis_client.exists(keys.DATA_LOST)
    watcher.check()
    assert watcher.instance == redis_client.get(keys.INSTANCE)


def test_redis_coming_back_empty_reloads_the_seed_and_records_the_loss(
    app, service, redis_client, caplog
):
    watcher = watch(app)
    watcher.check()
    service.create(Definition("made-by-an-editor", "T", ("One", "Two"), ("Body.",)))
    old = watcher.instance
    redis_client.flushall()
    with caplog.at_level(logging.ERROR, logger="abtest.watch"):
        watcher.check()
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "Redis lost its data" in caplog.records[0].getMessage()
    assert watcher.instance not in (None, old)
    assert redis_client.exists(keys.meta(SLUG))  # the seed story is back
    assert not redis_client.exists(keys.meta("made-by-an-editor"))
    record = redis_client.hgetall(keys.DATA_LOST)
    assert record["previous"] == old
    assert record["noticed_by"].endswith(f":{os.getpid()}")
    assert watcher.lost is not None and not watcher.lost.acknowledged
    assert [e.slug for e in service.front_page()] == [SLUG]


def test_another_process_adopts_the_new_marker_without_a_second_record(
    app, service, redis_client, redis_url
):
    first = watch(app)
    first.check()
    second = other_process(app, redis_url)
    second.check()
    assert second.instance == first.instance
    redis_client.flushall()
    first.check()
    noticed = redis_client.hgetall(keys.DATA_LOST)
    redis_client.delete(keys.meta(SLUG))  # the other process reloads it too
    second.check()
    assert second.instance == first.instance
    assert redis_client.hgetall(keys.DATA_LOST) == noticed
    assert redis_client.exists(keys.meta(SLUG))
    assert second.lost == first.lost


def test_a_marker_found_missing_by_two_processes_is_written_once(app, redis_client, redis_url):
    first = watch(app)
    first.check()
    second = other_process(app, redis_url)
    second.check()
    redis_client.delete(keys.INSTANCE)
    first.check()
    written = redis_client.get(keys.INSTANCE)
    record = redis_client.hgetall(keys.DATA_LOST)
    # The second process found it missing too, then lost the race inside the script.
    second._sighted()
    assert second.instance == written == redis_client.get(keys.INSTANCE)
    assert redis_client.hgetall(keys.DATA_LOST) == record


def test_a_reload_that_failed_half_way_is_tried_again(app, service, redis_client):
    watcher = watch(app)
    watcher.check()
    redis_client.flushall()
    watcher.check()
    redis_client.delete(keys.meta(SLUG), keys.EXPERIMENTS)  # as if the reload never happened
    watcher.check()
    assert redis_client.exists(keys.meta(SLUG))
    assert [e.slug for e in service.front_page()] == [SLUG]


def test_without_the_seed_setting_nothing_is_loaded_back(app, service, redis_client):
    watcher = watch(app)
    watcher.load_seed = False
    watcher.check()
    redis_client.flushall()
    watcher.check()
    assert redis_client.exists(keys.DATA_LOST)
    assert not redis_client.exists(keys.meta(SLUG))
    assert service.front_page() == []


def test_a_forked_child_keeps_the_marker_and_starts_no_thread(app):
    watcher = watch(app)
    watcher.check()
    watcher.start()
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if watcher._thread is None and watcher.instance else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        thread = watcher._thread
        watcher.stop()
        thread.join()  # no look of its own may land in the next test's Redis


# -- the dashboard's warning ---------------------------------------------------------


def csrf_token(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return TOKEN.search(response.text).group(1)


def sign_in(client):
    token = csrf_token(client, "/dashboard/login")
    response = client.post(
        "/dashboard/login",
        data={"username": "editor", "password": "correct horse", "csrf_token": token},
    )
    assert response.status_code == 303
    return client


def test_the_dashboard_warns_until_an_editor_acknowledges(app, client, redis_client, caplog):
    watcher = watch(app)
    watcher.check()
    editor = sign_in(client)
    assert WARNING not in editor.get("/dashboard/").text
    redis_client.flushall()
    watcher.check()
    sign_in(editor)  # the sessions were in Redis too
    for path in ("/dashboard/", f"/dashboard/{SLUG}"):
        page = editor.get(path).text
        assert WARNING in page and "editor-made experiments were lost" in page
    # Without the form's token nothing changes.
    assert editor.post("/dashboard/data-loss/acknowledge").status_code == 400
    assert WARNING in editor.get("/dashboard/").text
    token = csrf_token(editor, "/dashboard/")
    with caplog.at_level(logging.WARNING, logger="abtest.watch"):
        response = editor.post("/dashboard/data-loss/acknowledge", data={"csrf_token": token})
    assert response.status_code == 303
    assert WARNING not in editor.get(response.headers["Location"]).text
    record = redis_client.hgetall(keys.DATA_LOST)
    assert record["acknowledged_by"] == "editor" and float(record["acknowledged_at"]) > 0
    assert any("editor editor acknowledged" in r.getMessage() for r in caplog.records)


def test_the_warning_is_for_editors_only(app, client, redis_client):
    watcher = watch(app)
    watcher.check()
    redis_client.flushall()
    watcher.check()
    assert WARNING not in client.get("/dashboard/login").text
    assert WARNING not in client.get("/", headers={"User-Agent": "Mozilla/5.0"}).text


def test_reader_pages_never_read_the_loss_record(app, settings, tmp_path):
    """The warning's context processor is the dashboard's only: a reader's page
    renders with Redis unreachable and the watch never consulted."""
    dead = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    reader_app = create_app(settings, redis=dead)
    processors = reader_app.template_context_processors
    names = [p.__name__ for p in processors.get(None, [])]
    assert "data_loss_context" not in names
    assert any(p.__name__ == "data_loss_context" for p in processors["dashboard"])
    reader_app.extensions["abtest"]["service"].stop()


# -- under a real abtest serve -------------------------------------------------------


class Editor:
    """A browser signed in to the dashboard (cookies kept by urllib)."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def post(self, path: str, form: str, **data: str) -> str:
        token = TOKEN.search(self.get(form)).group(1)
        body = urllib.parse.urlencode({**data, "csrf_token": token}).encode()
        with self.opener.open(self.base + path, data=body, timeout=10) as response:
            return response.read().decode()

    def sign_in(self) -> Editor:
        page = self.post(
            "/dashboard/login", "/dashboard/login", username="editor", password="correct horse"
        )
        assert "Signed in as" in page
        return self


@pytest.mark.slow
def test_live_while_redis_is_down_and_the_seed_reloaded_when_it_comes_back_empty(
    tmp_path, settings
):
    redis_server = OwnRedis(tmp_path).start()
    try:
        server = Serve(
            tmp_path / "data",
            REDIS_URL=redis_server.url,
            ABTEST_EDITOR_USER="editor",
            ABTEST_EDITOR_PASSWORD_HASH=settings.editor_password_hash,
        )
        with server:
            assert answers(server.port, "/healthz/live") and answers(server.port, "/healthz/ready")
            redis_server.kill()
            wait_until(lambda: answers(server.port, "/healthz/ready", 503), 15, "ready says 503")
            for _ in range(20):  # down: the process still serves, and says so
                assert answers(server.port, "/healthz/live")
                assert answers(server.port, "/healthz")
            client = server.client()
            assert teasers(client.get("/").body)  # readers are served meanwhile
            client.close()

            redis_server.start()  # back, empty: no persistence
            back = time.monotonic()

            def all_ready():  # eight in a row: every worker has caught up
                return all(answers(server.port, "/healthz/ready") for _ in range(8))

            wait_until(all_ready, 15, "ready again")
            ready_after = time.monotonic() - back
            client = server.client()
            for _ in range(8):  # whichever worker answers
                ((_, headline),) = teasers(client.get("/").body)
                assert headline in HEADLINES  # the seed story is back on the front page
            client.close()
            assert redis_server.client().exists(keys.DATA_LOST)

            editor = Editor(server.port).sign_in()
            for _ in range(4):  # whichever worker answers
                assert WARNING in editor.get("/dashboard/")
            page = editor.post("/dashboard/data-loss/acknowledge", "/dashboard/")
            assert WARNING not in page
            for _ in range(4):
                assert WARNING not in editor.get("/dashboard/")
            print(f"\nRedis back empty: ready again with the seed after {ready_after:.2f} s")
    finally:
        redis_server.kill()
    output = server.output()
    # One process noticed and said so, loudly, with the time and its pid.
    assert output.count("[ERROR] abtest.watch: Redis lost its data:") == 1, output
