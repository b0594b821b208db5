"""Error pages: short messages, never a traceback; Redis away is a 503."""

from __future__ import annotations

from helpers import BROWSER, SLUG, totals

from abtest import create_app
from abtest.store import connect


def test_error_pages_never_show_a_traceback(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Traceback" not in response.text and "Not Found" in response.text


def test_wrong_method_is_405(client, service):
    assert client.post("/").status_code == 405
    assert client.delete(f"/articles/{SLUG}").status_code == 405
    assert sum(totals(service)[0]) == 0


def test_redis_away_is_a_503_page_without_a_traceback(settings, tmp_path):
    # No snapshot to serve and no Redis: the store's error becomes a short 503.
    dead = connect(f"unix://{tmp_path}/nothing-here.sock", timeout=0.2)
    app = create_app(settings, redis=dead)
    try:
        page = app.test_client().get(f"/articles/{SLUG}", headers={"User-Agent": BROWSER})
        assert page.status_code == 503
        assert "Traceback" not in page.text and "try again" in page.text
    finally:
        app.extensions["abtest"]["service"].stop()
