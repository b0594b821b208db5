"""Python function calls per request: the service's reader path against the floor.

    python bench/calls.py [--requests 500]

The shared 2-core machine is too noisy to time a change worth a few percent
(bench/reader.py's ratios move by +-0.1 from one round to the next), so this
counts instead: it calls each WSGI app in-process (no HTTP server, no load
generator) against a private redis-server and counts, with cProfile, the
Python and built-in function calls each request makes.  The counts are the
same from run to run, so a change to the hot path shows up exactly.  They
leave out what both sides share outside the app (the server, the kernel) and
what no call count sees (Redis's own time, cache misses), so they bound the
requests/s ratios of bench/reader.py from below rather than predict them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import scratch_redis  # noqa: E402
from reader import API_TOKEN, BROWSER, SECRET, SLUG  # noqa: E402

from abtest import keys  # noqa: E402
from abtest.tokens import ClickToken, ClickTokens, Visitor, VisitorCookies, visitor_ref  # noqa: E402


def environ(path: str, cookie: str | None = None) -> dict:
    """A GET as a WSGI server would pass it, from a browser."""
    found = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": BROWSER,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if cookie:
        found["HTTP_COOKIE"] = cookie
    return found


def call(app, env: dict) -> tuple[str, list]:
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = app(env, start_response)
    b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return seen["status"], seen["headers"]


def calls_per_request(request, count: int) -> float:
    for _ in range(50):  # warm: caches, first-use imports
        request()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(count):
        request()
    profile.disable()
    return pstats.Stats(profile).total_calls / count


def apps(url: str, work: Path):
    """The service (with the seed story's counts at 10M impressions each) and
    the floor app, both over the Redis at ``url``."""
    os.environ.update(
        REDIS_URL=url,
        ABTEST_SECRET_KEY=SECRET,
        ABTEST_API_TOKEN=API_TOKEN,
        ABTEST_DATA_DIR=str(work / "data"),
        # One address for every request: budgets checked but never reached.
        ABTEST_BUDGET_IMPRESSIONS="1000000000",
        ABTEST_BUDGET_CLICKS="1000000000",
    )
    import floor

    from abtest import create_app

    app = create_app()
    client = redis.Redis.from_url(url)
    for variant in "abc":
        client.hset(keys.counts(SLUG), keys.impression_field(variant), 10_000_000)
    return app, floor.app


def reader_scenarios(app, floor_app, clicks: int) -> dict:
    """Each scenario's request on the service and on its floor (in-process calls).

    ``{name: (service request, floor request, floor name)}``; the click
    scenario has ``clicks`` distinct visitors' links, one per call.
    """
    status, headers = call(app, environ("/"))
    cookie = dict(headers)["Set-Cookie"].split(";", 1)[0]
    tokens, cookies = ClickTokens(SECRET, 86_400), VisitorCookies(SECRET)
    links = []
    for number in range(clicks):
        variant = "abc"[number % 3]
        visitor = Visitor(f"calls{os.getpid()}x{number}", {SLUG: variant})
        token = tokens.dumps(ClickToken(SLUG, variant, visitor_ref(visitor.id)))
        links.append((f"/c/{token}", f"abtest_visitor={cookies.dumps(visitor)}"))
    next_click = iter(links).__next__

    def click():
        path, visitor_cookie = next_click()
        assert call(app, environ(path, visitor_cookie))[0].startswith("303")

    floor_hincr = (lambda: call(floor_app, environ("/hincr")), "HINCRBY floor")
    floor_hello = (lambda: call(floor_app, environ("/hello", cookie)), "hello floor")
    return {
        "new visitor at /": (lambda: call(app, environ("/")), *floor_hincr),
        "returning visitor at /": (lambda: call(app, environ("/", cookie)), *floor_hello),
        "click /c/<token>": (click, *floor_hincr),
        "assignment API (new visitor)": (
            lambda: call(app, environ(f"/api/v1/experiments/{SLUG}/assignment")),
            *floor_hincr,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    with scratch_redis.running("abtest-calls-") as (url, work):
        app, floor_app = apps(url, work)
        scenarios = reader_scenarios(app, floor_app, args.requests + 100)
        print("| scenario | abtest calls per request | floor | floor calls | ratio floor/abtest |")
        print("| --- | ---: | --- | ---: | ---: |")
        for name, (mine, base, base_name) in scenarios.items():
            ours, theirs = calls_per_request(mine, args.requests), calls_per_request(base, 500)
            print(f"| {name} | {ours:.0f} | {base_name} | {theirs:.0f} | {theirs / ours:.2f} |")
        app.extensions["abtest"]["service"].stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
