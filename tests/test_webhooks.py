"""Webhooks, against the suite's real Redis and a real HTTP receiver on 127.0.0.1.

The receiver is ``http.server`` in a thread, answering each path with the
statuses a test scripts (200 once the script runs out).  No test waits for a
sleep: each polls the receiver, or waits until every sender has nothing left
to try, with a generous deadline.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import free_port
from helpers import SLUG

from abtest import create_app, keys, verdicts, webhooks
from abtest.config import ConfigError, Settings
from abtest.store import connect
from abtest.watch import watch
from abtest.webhooks import (
    DATA_LOST,
    DELIVERED,
    FAILED,
    PROVEN_WINNER,
    RETRYING,
    SAFE_TO_STOP,
    Answer,
    InvalidWebhook,
    check_url,
    notifier,
    outcome,
)

#: Waits between tries in these tests: the tries follow each other at once.
FAST = (0.01, 0.01)
#: Deadline for anything the tests wait on (generous: a busy 2-core machine).
DEADLINE = 30.0
PUBLIC = "https://news.example.com"
TITLE_PATTERN = re.compile(r"Colombia")
#: Counts where the headlines perform alike: safe to stop, nothing proven.
ALIKE = {"i:a": 300_000, "c:a": 6000, "i:b": 300_000, "c:b": 6000, "i:c": 300_000, "c:c": 6000}
#: Counts where B is proven better, and safe to choose.
B_WINS = {"i:a": 100_000, "c:a": 1500, "i:b": 100_000, "c:b": 2500, "i:c": 100_000, "c:c": 1500}
#: Too early for either event.
EARLY = {"i:a": 3000, "c:a": 60, "i:b": 3000, "c:b": 61, "i:c": 3000, "c:c": 59}


# -- the receiver -------------------------------------------------------------------


class Receiver:
    """A webhook receiver: records every POST, answers with the scripted statuses."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    statuses = receiver.script.get(self.path) or []
                    status = statuses.pop(0) if statuses else 200
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "content_type": self.headers.get("Content-Type"),
                            "json": json.loads(body),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def wait_for(self, count: int, path: str | None = None) -> list[dict]:
        """At least ``count`` requests (to ``path``), polled until the deadline."""
        deadline = time.monotonic() + DEADLINE
        while len(self.received(path)) < count:
            assert time.monotonic() < deadline, f"{len(self.received(path))} of {count} arrived"
            time.sleep(0.01)
        return self.received(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiving = Receiver()
    yield receiving
    receiving.close()


@pytest.fixture
def make_app(settings, redis_client, redis_url):
    """Apps over the suite's Redis, each its own process as far as the webhooks go
    (its own connection, notifier and sender), with fast retries."""
    made = []

    def make(**changes):
        app = create_app(dataclasses.replace(settings, **changes), redis=connect(redis_url, 5))
        app.config["TESTING"] = True
        notifier(app).sender.delays = FAST
        made.append(app)
        return app

    yield make
    for app in made:
        notifier(app).stop()
        app.extensions["abtest"]["service"].stop()


def settle(*apps) -> None:
    """Wait until no sender has a try waiting or under way."""
    for app in apps:
        assert notifier(app).sender.wait_idle(DEADLINE), "deliveries still pending"


def evaluate_together(*apps, rounds: int = 3) -> None:
    """Every app evaluates at the same moment, ``rounds`` times (no lock: each evaluates)."""
    barrier = threading.Barrier(len(apps))
    errors = []

    def run(app):
        try:
            for _ in range(rounds):
                barrier.wait(DEADLINE)
                notifier(app).evaluate(lock=False)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not errors, errors


def set_counts(redis_client, counts: dict[str, int]) -> None:
    redis_client.hset(keys.counts(SLUG), mapping=counts)


def webhook_entries(app, slug: str = SLUG) -> list[dict]:
    """The story's webhook tries from its audit log, oldest first."""
    audit = app.extensions["abtest"]["service"].audit(slug, limit=1000)
    return [entry for entry in reversed(audit) if entry["action"] == "webhook"]


# -- test events: once per round ----------------------------------------------------


def test_safe_to_stop_is_posted_once_with_two_processes_evaluating(
    make_app, receiver, redis_client, caplog
):
    url = receiver.url("/global/T000/B000/secret-part")
    first = make_app(webhook_url=url, public_url=PUBLIC)
    second = make_app(webhook_url=url, public_url=PUBLIC)
    set_counts(redis_client, EARLY)
    evaluate_together(first, second)
    settle(first, second)
    assert receiver.received() == []

    set_counts(redis_client, ALIKE)
    with caplog.at_level(logging.INFO, logger="abtest.webhooks"):
        evaluate_together(first, second)
        receiver.wait_for(1)
        settle(first, second)
        evaluate_together(first, second)  # still holding: nothing more
        settle(first, second)
    (request,) = receiver.received()
    body = request["json"]
    assert request["content_type"] == "application/json"
    assert body["event"] == SAFE_TO_STOP and body["experiment"] == SLUG
    assert TITLE_PATTERN.search(body["title"])
    assert body["verdict"].startswith("The headlines perform about the same")
    assert "Safe to stop: whichever you choose costs" in body["verdict"]
    assert body["url"] == f"{PUBLIC}/dashboard/{SLUG}"
    assert body["text"].startswith("Safe to stop: “")
    assert body["url"] in body["text"] and body["verdict"] in body["text"]
    assert list(body) == ["text", "event", "experiment", "title", "verdict", "url"]

    (entry,) = webhook_entries(first)
    assert (entry["event"], entry["host"], entry["status"], entry["outcome"]) == (
        SAFE_TO_STOP,
        "127.0.0.1",
        200,
        DELIVERED,
    )
    assert entry["scope"] == "global" and (entry["try"], entry["tries"]) == (1, 3)
    # Only the host is ever kept or logged: the rest of a webhook URL is its secret.
    audit = json.dumps(first.extensions["abtest"]["service"].audit(SLUG, limit=1000))
    assert "secret-part" not in audit
    assert caplog.records and not any("secret-part" in r.getMessage() for r in caplog.records)
    assert redis_client.hexists(keys.notified(SLUG), SAFE_TO_STOP)


def test_a_proven_winner_and_safe_to_stop_are_sent_again_only_after_a_reopen(
    make_app, receiver, redis_client
):
    app = make_app(webhook_url=receiver.url("/newsroom"))
    service = app.extensions["abtest"]["service"]
    hooks = notifier(app)
    set_counts(redis_client, B_WINS)
    hooks.evaluate(lock=False)
    requests = receiver.wait_for(2)
    assert [r["json"]["event"] for r in requests] == [PROVEN_WINNER, SAFE_TO_STOP]
    proven = requests[0]["json"]
    assert proven["verdict"].startswith("B is proven better than A and C.")
    assert proven["text"].startswith("Proven winner: “") and proven["url"] is None

    hooks.evaluate(lock=False)
    service.pause(SLUG, "editor")
    service.resume(SLUG, "editor")
    hooks.evaluate(lock=False)  # a pause is no new round
    settle(app)
    assert len(receiver.received()) == 2

    service.decide(SLUG, "b", "editor")
    hooks.evaluate(lock=False)  # decided: no events
    settle(app)
    assert len(receiver.received()) == 2
    service.reopen(SLUG, "editor")
    hooks.evaluate(lock=False)
    requests = receiver.wait_for(4)
    settle(app)
    assert [r["json"]["event"] for r in requests[2:]] == [PROVEN_WINNER, SAFE_TO_STOP]
    assert len(receiver.received()) == 4


def test_the_evaluating_thread_sends_without_being_asked(make_app, receiver, redis_client):
    app = make_app(webhook_url=receiver.url("/newsroom"))
    hooks = notifier(app)
    hooks.interval = 0.05
    set_counts(redis_client, ALIKE)
    watch(app).start()  # the notifier starts with the watch, in every process
    try:
        (request,) = receiver.wait_for(1)
    finally:
        watch(app).stop()
    assert request["json"]["event"] == SAFE_TO_STOP


def test_nothing_is_evaluated_without_a_subscriber(make_app, redis_client):
    app = make_app()
    set_counts(redis_client, ALIKE)
    assert notifier(app).evaluate(lock=False) == 0
    assert notifier(app)._reports == {} and not redis_client.exists(keys.notified(SLUG))


def test_the_verdict_sent_is_the_dashboards(make_app, receiver, redis_client):
    """Sent from a report without the forecast, in the words of the dashboard's."""
    app = make_app(webhook_url=receiver.url("/newsroom"))
    service = app.extensions["abtest"]["service"]
    for counts in (ALIKE, B_WINS):
        redis_client.delete(keys.notified(SLUG))
        set_counts(redis_client, counts)
        notifier(app).evaluate(lock=False)
        settle(app)
        dashboard = verdicts.verdict(service.report(SLUG)).text
        assert receiver.received()[-1]["json"]["verdict"] == dashboard


def test_one_process_evaluates_per_interval(make_app, redis_client):
    first, second = make_app(), make_app()
    notifier(first).interval = notifier(second).interval = 60
    notifier(first).evaluate()
    assert redis_client.get(keys.WEBHOOKS_EVALUATING) == notifier(first).name
    assert 0 < redis_client.pttl(keys.WEBHOOKS_EVALUATING) <= 60_000
    evaluated = []
    second.extensions["abtest"]["service"].fresh_all = lambda: evaluated.append(1) or []
    notifier(second).evaluate()
    assert evaluated == []


# -- delivery: tries, back-off, giving up ------------------------------------------------


def test_a_receiver_answering_500_twice_then_200_gets_three_tries(make_app, receiver, redis_client):
    app = make_app()
    receiver.script["/story"] = [500, 500, 200]
    notifier(app).set_url(SLUG, receiver.url("/story"), "editor")
    set_counts(redis_client, ALIKE)
    notifier(app).evaluate(lock=False)
    requests = receiver.wait_for(3)
    settle(app)
    assert [r["status"] for r in receiver.received()] == [500, 500, 200]
    assert len({json.dumps(r["json"]) for r in requests}) == 1  # the same message each time
    tries = [(e["try"], e["status"], e["outcome"], e["scope"]) for e in webhook_entries(app)]
    assert tries == [
        (1, 500, RETRYING, "experiment"),
        (2, 500, RETRYING, "experiment"),
        (3, 200, DELIVERED, "experiment"),
    ]


def test_a_404_ends_it(make_app, receiver, redis_client):
    app = make_app()
    receiver.script["/gone"] = [404]
    notifier(app).set_url(SLUG, receiver.url("/gone"), "editor")
    set_counts(redis_client, ALIKE)
    notifier(app).evaluate(lock=False)
    receiver.wait_for(1)
    settle(app)
    assert len(receiver.received()) == 1
    (entry,) = webhook_entries(app)
    assert (entry["status"], entry["outcome"], entry["try"]) == (404, FAILED, 1)


def test_no_answer_is_tried_three_times_then_given_up(make_app, redis_client):
    app = make_app()
    closed = f"http://127.0.0.1:{free_port()}/nobody"
    notifier(app).set_url(SLUG, closed, "editor")
    set_counts(redis_client, ALIKE)
    notifier(app).evaluate(lock=False)
    settle(app)
    entries = webhook_entries(app)
    assert [(e["try"], e["status"], e["outcome"]) for e in entries] == [
        (1, None, RETRYING),
        (2, None, RETRYING),
        (3, None, FAILED),
    ]
    assert all(e["error"] for e in entries)


@pytest.mark.parametrize(
    ("answer", "tries", "expected"),
    [
        (Answer(200), 1, DELIVERED),
        (Answer(204), 3, DELIVERED),
        (Answer(500), 1, RETRYING),
        (Answer(503), 2, RETRYING),
        (Answer(503), 3, FAILED),
        (Answer(429), 1, RETRYING),
        (Answer(None, "timed out"), 1, RETRYING),
        (Answer(None, "timed out"), 3, FAILED),
        (Answer(404), 1, FAILED),
        (Answer(400), 1, FAILED),
        (Answer(410), 2, FAILED),
        (Answer(301), 1, FAILED),  # redirects are not followed
    ],
)
def test_what_ends_a_delivery(answer, tries, expected):
    assert outcome(answer, tries, 3) == expected


def test_a_redirect_is_not_followed(make_app, receiver, redis_client):
    app = make_app()
    receiver.script["/moved"] = [302]
    notifier(app).set_url(SLUG, receiver.url("/moved"), "editor")
    set_counts(redis_client, ALIKE)
    notifier(app).evaluate(lock=False)
    receiver.wait_for(1)
    settle(app)
    assert [r["path"] for r in receiver.received()] == ["/moved"]
    (entry,) = webhook_entries(app)
    assert (entry["status"], entry["outcome"]) == (302, FAILED)


# -- Redis lost data -------------------------------------------------------------------


def test_data_loss_is_posted_once_to_each_subscriber(make_app, receiver, redis_client):
    first = make_app(webhook_url=receiver.url("/newsroom"), public_url=PUBLIC)
    second = make_app(webhook_url=receiver.url("/newsroom"), public_url=PUBLIC)
    notifier(first).set_url(SLUG, receiver.url("/story"), "editor")
    evaluate_together(first, second, rounds=1)  # both have read the story's URL
    watch(first).check()
    redis_client.flushdb()
    watch(first).check()  # notices, records the loss, loads the seed story again
    evaluate_together(first, second)
    receiver.wait_for(2)
    settle(first, second)
    evaluate_together(first, second)
    settle(first, second)

    (newsroom,) = receiver.received("/newsroom")
    (story,) = receiver.received("/story")
    assert newsroom["json"]["event"] == story["json"]["event"] == DATA_LOST
    assert newsroom["json"]["experiment"] is None
    assert newsroom["json"]["text"].startswith("Redis lost data: every count")
    assert newsroom["json"]["url"] == f"{PUBLIC}/dashboard/"
    assert story["json"]["experiment"] == SLUG and TITLE_PATTERN.search(story["json"]["title"])
    assert "its counts start again from zero" in story["json"]["text"]
    assert story["json"]["url"] == f"{PUBLIC}/dashboard/{SLUG}"
    # The story's try is in its (new) audit log; the newsroom's belongs to no story.
    (entry,) = webhook_entries(first)
    assert (entry["event"], entry["scope"], entry["outcome"]) == (
        DATA_LOST,
        "experiment",
        DELIVERED,
    )
    assert redis_client.hexists(keys.DATA_LOST, "webhook_sent")


def test_an_acknowledged_loss_is_not_sent(make_app, receiver, redis_client):
    app = make_app(webhook_url=receiver.url("/newsroom"))
    watch(app).check()
    redis_client.flushdb()
    watch(app).check()
    watch(app).acknowledge("editor")
    notifier(app).evaluate(lock=False)
    settle(app)
    assert receiver.received() == []


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T000/B000/XXXX",
        "http://hooks.example.com/x?token=1",
        "  https://hooks.example.com:8443/x  ",
    ],
)
def test_urls_accepted_in_development(url):
    assert check_url(url, production=False) == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "not a url",
        "hooks.slack.com/services/x",
        "ftp://hooks.example.com/x",
        "javascript:alert(1)",
        "https://",
        "https://user:password@hooks.example.com/x",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/" + "x" * 2048,
    ],
)
def test_urls_refused(url):
    with pytest.raises(InvalidWebhook):
        check_url(url, production=False)


def test_production_wants_https_except_to_this_machine():
    with pytest.raises(InvalidWebhook, match="https"):
        check_url("http://hooks.example.com/x", production=True)
    for url in ("http://localhost:9000/x", "http://127.0.0.1/x", "http://[::1]:80/x"):
        assert check_url(url, production=True) == url
    assert check_url("https://hooks.example.com/x", production=True)


def test_the_setting_is_checked_at_start(tmp_path):
    with pytest.raises(ConfigError, match="ABTEST_WEBHOOK_URL"):
        Settings.from_env({"ABTEST_WEBHOOK_URL": "hooks.example.com", "ABTEST_DATA_DIR": "x"})
    with pytest.raises(ConfigError, match="ABTEST_WEBHOOK_URL: in production"):
        Settings(
            env="production",
            secret_key=os.urandom(32).hex(),
            webhook_url="http://hooks.example.com/x",
        ).validate()


# -- the dashboard's form ---------------------------------------------------------------

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(app):
    client = app.test_client()
    page = client.get("/dashboard/login")
    response = client.post(
        "/dashboard/login",
        data={
            "username": "editor",
            "password": "correct horse",
            "csrf_token": TOKEN.search(page.text).group(1),
        },
    )
    assert response.status_code == 303
    return client


def form_token(client) -> str:
    page = client.get(f"/dashboard/{SLUG}")
    assert page.status_code == 200
    return TOKEN.search(page.text).group(1)


def stored(app) -> str | None:
    return app.extensions["abtest"]["service"].store.webhooks([SLUG])[SLUG]


def test_an_editor_sets_and_removes_the_story_webhook(make_app):
    app = make_app(webhook_url="https://hooks.example.org/services/T/B/newsroom-secret")
    editor = signed_in(app)
    page = editor.get(f"/dashboard/{SLUG}").text
    assert "no webhook of its own" in page and "hooks.example.org" in page
    assert "newsroom-secret" not in page

    url = "https://hooks.slack.com/services/T000/B000/story-secret"
    response = editor.post(
        f"/dashboard/{SLUG}/webhook", data={"url": url, "csrf_token": form_token(editor)}
    )
    assert response.status_code == 303
    assert stored(app) == url
    page = editor.get(response.headers["Location"]).text
    assert "sends to <strong>hooks.slack.com</strong>" in page
    assert "story-secret" not in page and "Set the webhook" in page

    response = editor.post(
        f"/dashboard/{SLUG}/webhook", data={"remove": "1", "csrf_token": form_token(editor)}
    )
    assert response.status_code == 303 and stored(app) is None
    audit = app.extensions["abtest"]["service"].audit(SLUG)
    changes = [
        (e["editor"], e["host_from"], e["host"]) for e in audit if e["action"] == "webhook-url"
    ]
    assert changes == [("editor", "hooks.slack.com", None), ("editor", None, "hooks.slack.com")]
    assert "story-secret" not in json.dumps(audit)


@pytest.mark.parametrize("url", ["not a url", "ftp://hooks.example.com/x", ""])
def test_the_form_refuses_what_is_not_a_webhook_url(make_app, url):
    app = make_app()
    editor = signed_in(app)
    response = editor.post(
        f"/dashboard/{SLUG}/webhook", data={"url": url, "csrf_token": form_token(editor)}
    )
    assert response.status_code == 400 and "Nothing changed" in response.text
    assert stored(app) is None


def test_the_form_refuses_a_missing_or_forged_csrf_token(make_app):
    app = make_app()
    editor = signed_in(app)
    url = "https://hooks.example.com/x"
    for data in ({"url": url}, {"url": url, "csrf_token": "forged"}):
        response = editor.post(f"/dashboard/{SLUG}/webhook", data=data)
        assert response.status_code == 400
    assert stored(app) is None


def test_the_form_is_for_editors_only(make_app):
    app = make_app()
    response = app.test_client().post(
        f"/dashboard/{SLUG}/webhook", data={"url": "https://hooks.example.com/x"}
    )
    assert response.status_code in (303, 400)  # to the sign-in form, or refused
    assert stored(app) is None


def test_the_form_refuses_plain_http_in_production(make_app, settings):
    app = make_app(
        env="production", secret_key=os.urandom(32).hex(), api_token=None, cookie_secure=False
    )
    editor = signed_in(app)
    response = editor.post(
        f"/dashboard/{SLUG}/webhook",
        data={"url": "http://hooks.example.com/x", "csrf_token": form_token(editor)},
    )
    assert response.status_code == 400 and "https" in response.text
    assert stored(app) is None


# -- fork safety ---------------------------------------------------------------------------


def test_a_forked_child_starts_with_no_deliveries_and_no_thread(make_app):
    app = make_app(webhook_url="http://127.0.0.1:9/nobody")
    sender = notifier(app).sender
    sender.delays = (60.0, 60.0)  # a retry stays waiting in the parent
    delivery = webhooks.Delivery("http://127.0.0.1:9/nobody", b"{}", DATA_LOST, None, "global")
    sender.send(delivery)
    deadline = time.monotonic() + DEADLINE
    while not (delivery.tries == 1 and sender.pending() == 1 and sender._busy == 0):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os._exit(0 if sender.pending() == 0 and sender._thread is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- a real server ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_server_sends_once_from_its_workers(tmp_path, receiver, redis_client, redis_url):
    """Under ``abtest serve`` every worker evaluates (started with the watch after the
    fork), and the story's event still arrives once."""
    from serving import Serve, wait_until

    def tries() -> list[tuple]:
        audit = [json.loads(e) for e in redis_client.lrange(keys.audit(SLUG), 0, -1)]
        return [(e["event"], e["status"], e["outcome"]) for e in audit if e["action"] == "webhook"]

    url = receiver.url("/newsroom")
    with Serve(tmp_path / "data", workers=2, REDIS_URL=redis_url, ABTEST_WEBHOOK_URL=url):
        set_counts(redis_client, ALIKE)
        (request,) = receiver.wait_for(1)
        assert request["json"]["event"] == SAFE_TO_STOP
        wait_until(tries, DEADLINE, "the try in the audit log")
        # An evaluation after the one that sent (the lock taken afresh) sends nothing.
        seen = [redis_client.pttl(keys.WEBHOOKS_EVALUATING)]

        def evaluated_again() -> bool:
            seen.append(redis_client.pttl(keys.WEBHOOKS_EVALUATING))
            return seen[-1] > 0 and (seen[-2] < 0 or seen[-1] > seen[-2])

        wait_until(evaluated_again, DEADLINE, "another evaluation")
        assert tries() == [(SAFE_TO_STOP, 200, DELIVERED)]
    assert len(receiver.received()) == 1
