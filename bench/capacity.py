"""What a reader costs in CPU, in Redis and in the app server: the inputs of docs/scaling.md.

    python bench/capacity.py [--duration 4] [--experiments 1,10,100]

Starts a private redis-server and ``abtest serve`` (its default server, 2
workers) and, for a front page of 1, 10 and 100 running experiments, drives
new visitors (no cookie), returning visitors and clicks with wrk, reading
before and after each run:

- the CPU time (user + system, from /proc) of redis-server and of the whole
  ``abtest serve`` process tree, divided by the requests served: CPU seconds
  per request, which includes the kernel's work on each side's sockets;
- Redis's own ``INFO commandstats``: the counting scripts' calls and
  ``usec_per_call`` (Lua time alone, no I/O).

It also measures an idle service's Redis CPU per second (the workers'
background refreshes, each re-reading every experiment every 0.5 s).  The
load generator shares the machine: the absolute figures are this machine's;
the table in docs/scaling.md divides a core's second by them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import scratch_redis  # noqa: E402
from reader import (  # noqa: E402
    BROWSER,
    SLUG,
    click_file,
    process,
    returning_cookie,
    service_env,
    wait_http,
    wrk,
)
from scratch_redis import free_port  # noqa: E402

from abtest import keys  # noqa: E402
from abtest.model import Definition  # noqa: E402
from abtest.store import RedisStore  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and all its descendants (live ones)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        for task in Path(f"/proc/{current}/task").iterdir():
            children = task / "children"
            if children.exists():
                stack.extend(int(c) for c in children.read_text().split())
    return total


def script_stats(client: redis.Redis) -> dict[str, float]:
    stats = client.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return {"calls": evalsha["calls"], "usec": evalsha["usec"]}


def add_experiments(client: redis.Redis, count: int) -> None:
    store = RedisStore(client, 172_800, 7_776_000)
    for number in range(count):
        definition = Definition.from_mapping(
            {
                "slug": f"story-{number}",
                "title": f"Story {number}",
                "headlines": [f"Headline A of story {number}", f"Headline B of story {number}"],
                "body": "The first paragraph.\n\nThe second.",
            }
        )
        store.create(definition, now=time.time())
        for variant in "ab":
            client.hset(keys.counts(definition.slug), keys.impression_field(variant), 10**7)


def measure(run, redis_pid: int, serve_pid: int, client: redis.Redis) -> dict:
    before = (cpu_seconds(redis_pid), cpu_seconds(serve_pid), script_stats(client))
    result = run()
    after = (cpu_seconds(redis_pid), cpu_seconds(serve_pid), script_stats(client))
    requests = result["rps"] * result["duration"]
    calls = after[2]["calls"] - before[2]["calls"]
    return {
        "rps": result["rps"],
        "errors": result["errors"],
        "redis_cpu_us_per_request": 1e6 * (after[0] - before[0]) / requests,
        "app_cpu_us_per_request": 1e6 * (after[1] - before[1]) / requests,
        "scripts_per_request": calls / requests,
        "script_lua_us": (after[2]["usec"] - before[2]["usec"]) / calls if calls else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--experiments", default="1,10,100")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = [int(n) for n in args.experiments.split(",")]
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="abtest-capacity-"))
    redis_port, port = free_port(), free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = service_env(url, work)
    results: dict = {"idle_redis_cpu_per_second": {}, "pages": {}}
    with process(scratch_redis.command(work, port=redis_port), env, work / "redis.log") as rd:
        client = redis.Redis.from_url(url, decode_responses=True)
        scratch_redis.wait_ready(client)
        serve = [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port)]
        serve += ["--workers", str(args.workers)]
        with process(serve, env, work / "serve.log") as app:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/healthz/live")
            for variant in "abc":
                client.hset(keys.counts(SLUG), keys.impression_field(variant), 10**7)
            headers = {"User-Agent": BROWSER}
            present = 1
            for size in sizes:
                add_experiments(client, size - present)
                present = size
                # Every worker's snapshot has them all before a reader comes.
                time.sleep(2)
                idle = cpu_seconds(rd.pid)
                time.sleep(5)
                results["idle_redis_cpu_per_second"][size] = (cpu_seconds(rd.pid) - idle) / 5
                wrk(base + "/", args, headers)  # warm up

                def timed(call):
                    started = time.monotonic()
                    result = call()
                    return result | {"duration": time.monotonic() - started}

                page = {
                    "new visitor": measure(
                        lambda: timed(lambda: wrk(base + "/", args, headers)),
                        rd.pid,
                        app.pid,
                        client,
                    )
                }
                cookie = returning_cookie(base)
                page["returning visitor"] = measure(
                    lambda c=cookie: timed(lambda: wrk(base + "/", args, headers | {"Cookie": c})),
                    rd.pid,
                    app.pid,
                    client,
                )
                if size == sizes[0]:
                    clicks = click_file(
                        work / "clicks.tsv", args.duration * 20_000, ("a", "b", "c")
                    )
                    page["click"] = measure(
                        lambda clicks=clicks: timed(
                            lambda: wrk(
                                base,
                                args,
                                headers,
                                script=HERE / "clicks.lua",
                                env=os.environ
                                | {"CLICKS_FILE": str(clicks), "WRK_THREADS": str(args.threads)},
                            )
                        ),
                        rd.pid,
                        app.pid,
                        client,
                    )
                results["pages"][size] = page
                for name, row in page.items():
                    print(f"{size} experiments, {name}: {json.dumps(row)}", file=sys.stderr)

    print(
        "\n| experiments on the page | request | req/s | app CPU µs | Redis CPU µs | "
        "scripts | Lua µs per script |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for size, page in results["pages"].items():
        for name, row in page.items():
            print(
                f"| {size} | {name} | {row['rps']:.0f} | {row['app_cpu_us_per_request']:.0f} | "
                f"{row['redis_cpu_us_per_request']:.1f} | {row['scripts_per_request']:.2f} | "
                f"{row['script_lua_us']:.1f} |"
            )
    print("\nidle Redis CPU (background refreshes of 2 workers), s per s:")
    for size, value in results["idle_redis_cpu_per_second"].items():
        print(f"  {size} experiments: {value:.4f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
