"""The floor for the reader path: the least a Flask view over Redis can do.

``/hincr`` makes one HINCRBY and renders a line of HTML; ``/hello`` touches
nothing.  ``python bench/floor.py PORT WORKERS [SERVER]`` serves it the way
``abtest serve`` serves the service (abtest.server.serve: the same server,
granian by default, with the same workers and threads), so the ratio
service/floor is what abtest itself costs.
"""

from __future__ import annotations

import os

import redis
from flask import Flask

app = Flask(__name__)
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@app.get("/hincr")
def hincr():
    count = _redis.hincrby("floor:{bench}:counts", "i:a", 1)
    return f"<!doctype html><p>Headline number {count}</p>"


@app.get("/hello")
def hello():
    return "<!doctype html><p>Hello</p>"


def load() -> Flask:
    return app


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from abtest.server import DEFAULT_SERVER, serve

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    chosen = sys.argv[3] if len(sys.argv) > 3 else DEFAULT_SERVER
    serve(load, "127.0.0.1", port, workers, server=chosen, name="abtest-floor")
