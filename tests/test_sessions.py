"""Editors' sessions kept in Redis: the cookie is a signed random id, signing out
ends every copy of it at once on every server, sessions end after the idle
timeout (the dashboard's polling doesn't count as activity), an editor can
sign out everywhere, a removed editor's sessions all end, and with Redis
unreachable the dashboard answers a clear 503.

Everything against the suite's real Redis; a second app on the same Redis
stands for a second app server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import re
import time
import urllib.parse

import pytest
from conftest import TEST_SECRET
from flask.sessions import SecureCookieSessionInterface
from helpers import SLUG
from itsdangerous import BadSignature, Signer
from serving import with_editor
from werkzeug.security import generate_password_hash

from abtest import create_app, keys
from abtest.sessions import SessionStore
from abtest.store import connect

PASSWORD = "correct horse"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
#: The signer of the editor's session id, as documented (stock itsdangerous).
SIGNER = Signer(TEST_SECRET, salt="abtest.editor-session", digest_method=hashlib.sha256)


def csrf_token(client, path: str = "/dashboard/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return TOKEN.search(response.text).group(1)


def sign_in(client, username: str = "editor", password: str = PASSWORD):
    token = csrf_token(client)
    response = client.post(
        "/dashboard/login",
        data={"username": username, "password": password, "csrf_token": token},
    )
    assert response.status_code == 303, response.text
    return response


def sign_out(client, everywhere: bool = False):
    data = {"csrf_token": csrf_token(client, "/dashboard/")}
    if everywhere:
        data["everywhere"] = "1"
    response = client.post("/dashboard/logout", data=data)
    assert response.status_code == 303
    return response


def cookie(client) -> str:
    return client.get_cookie("session").value


def session_id(client) -> str:
    return SIGNER.unsign(cookie(client)).decode()


def copy_of(client, app):
    """Another browser (on ``app``) holding a copy of ``client``'s session cookie."""
    other = app.test_client()
    other.set_cookie("session", cookie(client))
    return other


def signed_in(client) -> bool:
    status = client.get("/dashboard/").status_code
    assert status in (200, 302)
    return status == 200


@pytest.fixture
def second_app(settings, redis_client):
    """Another app server on the same Redis."""
    app = create_app(dataclasses.replace(settings, load_seed=False), redis=redis_client)
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()


@pytest.fixture
def team(settings, redis_client, tmp_path):
    """An app whose editors are ``editor`` (environment) and alice and bob (the users file)."""
    users = tmp_path / "editors"
    cheap = {"method": "pbkdf2:sha256:1000"}
    users.write_text(
        f"alice:{generate_password_hash('alice pw', **cheap)}\n"
        f"bob:{generate_password_hash('bob pw', **cheap)}\n"
    )
    app = create_app(dataclasses.replace(settings, users_file=users), redis=redis_client)
    app.config["TESTING"] = True
    yield app, users
    app.extensions["abtest"]["service"].stop()


# -- what the cookie holds ---------------------------------------------------------------


def test_the_cookie_is_a_signed_random_id_and_the_session_is_in_redis(client, redis_client):
    sign_in(client)
    value = cookie(client)
    sid = session_id(client)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)  # 32 random bytes
    assert value == SIGNER.sign(sid).decode()  # the id and its signature, nothing else
    record = redis_client.get(keys.session(sid))
    assert record is not None and '"editor"' in record
    assert redis_client.smembers(keys.editor_sessions("editor")) == {sid}


def test_each_sign_in_starts_a_new_session_id(client, new_client):
    anonymous = client.get("/dashboard/login")  # Flask's cookie for the form's CSRF secret
    assert anonymous.status_code == 200
    before = cookie(client)
    sign_in(client)
    first = session_id(client)
    assert cookie(client) != before
    other = new_client()
    sign_in(other)
    assert session_id(other) != first


def test_a_cookie_of_the_old_signed_cookie_kind_is_not_a_session(app, client):
    # Flask's own signed-cookie sessions held the editor's name in the cookie,
    # where a copy kept working after sign-out; such a cookie signs no one in.
    forged = SecureCookieSessionInterface().get_signing_serializer(app).dumps({"editor": "editor"})
    client.set_cookie("session", forged)
    assert not signed_in(client)
    assert client.get("/dashboard/api/experiments").status_code == 401
    assert client.get(f"/api/v1/experiments/{SLUG}/stats").status_code == 401


def test_a_made_up_session_id_is_not_a_session(client):
    client.set_cookie("session", SIGNER.sign("x" * 43).decode())
    assert not signed_in(client)
    assert client.get("/dashboard/api/experiments").status_code == 401


# -- signing out -----------------------------------------------------------------------------


def test_sign_out_ends_every_copy_of_the_cookie_on_every_server(
    app, client, second_app, redis_client
):
    sign_in(client)
    sid = session_id(client)
    here, there = copy_of(client, app), copy_of(client, second_app)
    assert signed_in(here) and signed_in(there)
    assert there.get(f"/api/v1/experiments/{SLUG}/stats").status_code == 200

    sign_out(client)
    with pytest.raises(BadSignature):  # the browser's cookie is no session id any more
        session_id(client)
    assert redis_client.get(keys.session(sid)) is None
    for copy in (here, there):
        assert not signed_in(copy)
        assert copy.get("/dashboard/api/experiments").status_code == 401
        assert copy.get(f"/api/v1/experiments/{SLUG}/stats").status_code == 401
    # The form's flash survives the sign-out, in the anonymous cookie.
    assert "You are signed out." in client.get("/dashboard/login").text


def test_a_session_made_on_one_server_works_on_another(client, second_app):
    sign_in(client)
    there = copy_of(client, second_app)
    page = there.get(f"/dashboard/{SLUG}")
    assert page.status_code == 200
    # Its CSRF secret is in the shared session too: a form from one server posts to the other.
    token = TOKEN.search(page.text).group(1)
    assert client.post(f"/dashboard/{SLUG}/pause", data={"csrf_token": token}).status_code == 303


def test_sign_out_everywhere_ends_all_of_that_editors_sessions_only(team):
    app, _ = team
    office, phone, colleague = app.test_client(), app.test_client(), app.test_client()
    sign_in(office, "alice", "alice pw")
    sign_in(phone, "alice", "alice pw")
    sign_in(colleague, "bob", "bob pw")
    assert signed_in(office) and signed_in(phone) and signed_in(colleague)
    sign_out(phone, everywhere=True)
    assert "signed out everywhere (2 sessions)" in phone.get("/dashboard/login").text
    assert not signed_in(office) and not signed_in(phone)
    assert signed_in(colleague)


def test_removing_an_editor_ends_all_their_sessions_for_good(team, redis_client):
    app, users = team
    office, phone = app.test_client(), app.test_client()
    sign_in(office, "alice", "alice pw")
    sign_in(phone, "alice", "alice pw")
    ids = {session_id(office), session_id(phone)}
    text = users.read_text()
    users.write_text("\n".join(line for line in text.splitlines() if not line.startswith("alice")))
    assert not signed_in(office)
    # Both of alice's sessions ended at her first request, not just the one making it.
    assert all(redis_client.get(keys.session(sid)) is None for sid in ids)
    users.write_text(text)  # back in the file: the old sessions stay ended
    assert not signed_in(phone)


# -- idle timeout -------------------------------------------------------------------------------


@pytest.fixture
def idle_app(settings, redis_client):
    app = create_app(
        dataclasses.replace(settings, session_idle=600, load_seed=True), redis=redis_client
    )
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()


def test_each_request_restarts_the_idle_timeout_but_polling_does_not(idle_app, redis_client):
    client = idle_app.test_client()
    sign_in(client)
    key = keys.session(session_id(client))
    assert 590 <= redis_client.ttl(key) <= 600  # ABTEST_SESSION_IDLE

    redis_client.expire(key, 30)  # as if the editor had been away for 570 s
    assert client.get(f"/dashboard/{SLUG}").status_code == 200
    assert redis_client.ttl(key) > 30  # a page the editor opened: the timeout starts again

    redis_client.expire(key, 30)
    assert client.get(f"/dashboard/api/experiments/{SLUG}").status_code == 200
    assert client.get("/dashboard/api/experiments").status_code == 200
    assert 0 < redis_client.ttl(key) <= 30  # the page's own polling: still ending


def test_a_poll_that_writes_the_session_keeps_its_expiry(idle_app, redis_client):
    client = idle_app.test_client()
    sign_in(client)  # not followed: the session holds no CSRF secret yet
    key = keys.session(session_id(client))
    assert "csrf_token" not in redis_client.get(key)
    redis_client.expire(key, 30)
    # The live fragments have forms: rendering them makes the session's CSRF secret.
    assert client.get(f"/dashboard/api/experiments/{SLUG}").status_code == 200
    assert "csrf_token" in redis_client.get(key)  # written back...
    assert 0 < redis_client.ttl(key) <= 30  # ...without restarting the idle timeout


def test_an_idle_session_ends(idle_app, redis_client):
    client = idle_app.test_client()
    sign_in(client)
    key = keys.session(session_id(client))
    redis_client.pexpire(key, 1)
    deadline = time.monotonic() + 10
    while redis_client.exists(key):  # Redis expires it by itself
        assert time.monotonic() < deadline
        time.sleep(0.01)
    response = client.get("/dashboard/api/experiments")
    assert response.status_code == 401  # the live page then says "Signed out"
    assert not signed_in(client)


def test_a_session_ended_elsewhere_is_never_written_back(redis_client):
    store = SessionStore(redis_client, idle=600)
    sid = store.create("editor", '{"editor": "editor"}')
    assert store.save(sid, '{"editor": "editor", "csrf_token": "x"}')
    store.delete(sid, "editor")
    # A request that loaded the session before the sign-out finishes after it.
    assert not store.save(sid, '{"editor": "editor", "csrf_token": "y"}')
    assert redis_client.get(keys.session(sid)) is None


def test_sign_in_forgets_sessions_that_ended_by_themselves(redis_client):
    store = SessionStore(redis_client, idle=600)
    old = store.create("editor", '{"editor": "editor"}')
    redis_client.delete(keys.session(old))  # as if it had expired
    new = store.create("editor", '{"editor": "editor"}')
    assert redis_client.smembers(keys.editor_sessions("editor")) == {new}
    assert store.delete_all("editor") == 1


# -- Redis unreachable ----------------------------------------------------------------------------


@pytest.fixture
def unreachable_app(settings, tmp_path):
    """An app server whose Redis can't be reached (nothing listens on its socket)."""
    url = f"unix://{tmp_path}/no-redis.sock"
    dead = connect(url, timeout=0.2)
    app = create_app(dataclasses.replace(settings, redis_url=url, load_seed=False), redis=dead)
    app.config["TESTING"] = True
    yield app
    app.extensions["abtest"]["service"].stop()
    dead.close()


def test_without_redis_the_dashboard_answers_a_clear_503(client, unreachable_app):
    sign_in(client)  # on a server that can reach Redis
    editor = copy_of(client, unreachable_app)
    for path in ("/dashboard/", f"/dashboard/{SLUG}", "/dashboard/login"):
        page = editor.get(path)
        assert page.status_code == 503, path
        assert "reach its database" in page.text and "Traceback" not in page.text
        assert page.headers["Retry-After"]
    polled = editor.get("/dashboard/api/experiments")
    assert polled.status_code == 503 and "database" in polled.json["error"]
    stats = editor.get(f"/api/v1/experiments/{SLUG}/stats")
    assert stats.status_code == 503 and stats.is_json

    # Signing in needs Redis too (the lockout lives there): 503, not a stack trace.
    stranger = unreachable_app.test_client()
    token = csrf_token(stranger)  # the form itself needs no Redis
    response = stranger.post(
        "/dashboard/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 503 and "reach its database" in response.text


# -- a real server --------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP connection with a session cookie of its own."""

    def __init__(self, port: int, session: str = ""):
        self.http = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.session = session

    def request(self, method: str, path: str, form: dict | None = None):
        headers = {"Cookie": f"session={self.session}"} if self.session else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.http.request(method, path, body=body, headers=headers)
        response = self.http.getresponse()
        text = response.read().decode()
        found = re.match(r"session=([^;]*)", response.getheader("Set-Cookie") or "")
        if found:
            self.session = found.group(1)
        return response.status, text

    def close(self) -> None:
        self.http.close()

    def sign_in(self) -> None:
        _, page = self.request("GET", "/dashboard/login")
        token = TOKEN.search(page).group(1)
        form = {"username": "editor", "password": PASSWORD, "csrf_token": token}
        assert self.request("POST", "/dashboard/login", form)[0] == 303


@pytest.mark.slow
def test_sessions_hold_across_the_workers_of_a_real_server(redis_url, redis_client, tmp_path):
    serve = with_editor(tmp_path / "data", redis_url, PASSWORD)
    with serve:
        port = serve.port
        editor = Connection(port)
        editor.sign_in()
        # Fresh connections land on whichever worker accepts them.
        copies = [Connection(port, editor.session) for _ in range(12)]
        assert [copy.request("GET", "/dashboard/")[0] for copy in copies] == [200] * 12
        _, page = editor.request("GET", "/dashboard/")
        token = TOKEN.search(page).group(1)
        assert editor.request("POST", "/dashboard/logout", {"csrf_token": token})[0] == 303
        assert [copy.request("GET", "/dashboard/")[0] for copy in copies] == [302] * 12
        for connection in (editor, *copies):
            connection.close()
    assert serve.process.returncode == 0, serve.output()
