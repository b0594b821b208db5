"""Which server under the reader path: abtest under each server it can run, in one run.

    python bench/servers.py [--workers 2] [--duration 3] [--rounds 3]

Starts a private redis-server and serves abtest with ``abtest serve`` under
each candidate in turn, with the same number of worker processes:
gunicorn's sync workers (``--server gunicorn --threads 1``), gunicorn's
gthread workers (``--server gunicorn``, 8 threads) and granian
(``--server granian``, 8 blocking threads: the default).  Each is driven by
wrk with keep-alive and with ``Connection: close``, for new visitors,
returning visitors and clicks, alternating servers round by round; the table
gives medians and each server's requests/s relative to gunicorn sync in the
same run.  Needs wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
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
from abtest.server import DEFAULT_THREADS  # noqa: E402


def servers(workers: int, port: int) -> dict[str, list[str]]:
    """Each candidate's command line serving abtest on ``port``."""
    serve = [sys.executable, "-m", "abtest.cli", "serve", "--port", str(port)]
    serve += ["--workers", str(workers)]
    return {
        "gunicorn sync": [*serve, "--server", "gunicorn", "--threads", "1"],
        f"gunicorn gthread ({DEFAULT_THREADS} threads)": [*serve, "--server", "gunicorn"],
        f"granian ({DEFAULT_THREADS} blocking threads)": [*serve, "--server", "granian"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="run only servers whose name contains this text")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="abtest-servers-"))
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = service_env(redis_url, work)
    candidates = {
        name: command
        for name, command in servers(args.workers, 0).items()
        if not args.only or args.only in name
    }
    rows: dict[tuple[str, str, str], list[float]] = {}
    with process(scratch_redis.command(work, port=redis_port), env, work / "redis.log"):
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        scratch_redis.wait_ready(client)
        for round_number in range(args.rounds):
            for name in candidates:
                port = free_port()
                command = servers(args.workers, port)[name]
                with process(command, env, work / f"server-{list(candidates).index(name)}.log"):
                    base = f"http://127.0.0.1:{port}"
                    wait_http(base + "/healthz/live")
                    for variant in "abc":
                        client.hset(keys.counts(SLUG), keys.impression_field(variant), 10**7)
                    cookie = returning_cookie(base)
                    wrk(base + "/", args, {"User-Agent": BROWSER})  # warm up
                    for connection in ("keep-alive", "close"):
                        headers = {"User-Agent": BROWSER}
                        if connection == "close":
                            headers["Connection"] = "close"
                        clicks = click_file(
                            work / "clicks.tsv", int(args.duration * 20_000), ("a", "b", "c")
                        )
                        runs = {
                            "new visitor": lambda b=base, h=headers: wrk(b + "/", args, h),
                            "returning visitor": lambda b=base, h=headers, k=cookie: wrk(
                                b + "/", args, h | {"Cookie": k}
                            ),
                            "click": lambda b=base, h=headers, c=clicks: wrk(
                                b,
                                args,
                                h,
                                script=HERE / "clicks.lua",
                                env=os.environ
                                | {"CLICKS_FILE": str(c), "WRK_THREADS": str(args.threads)},
                            ),
                        }
                        for scenario, run in runs.items():
                            result = run()
                            rows.setdefault((scenario, connection, name), []).append(result["rps"])
                            print(
                                f"round {round_number + 1} {name} {scenario} {connection}: "
                                f"{result['rps']:.0f} req/s, {result['errors']} errors",
                                file=sys.stderr,
                            )

    print(
        f"\nworkers={args.workers}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, {args.rounds} rounds alternating servers, medians\n"
    )
    names = list(candidates)
    print("| scenario | connection | " + " | ".join(names) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in names) + " |")
    for scenario in ("new visitor", "returning visitor", "click"):
        for connection in ("keep-alive", "close"):
            medians = {n: statistics.median(rows[(scenario, connection, n)]) for n in names}
            base = medians.get("gunicorn sync")
            cells = [
                f"{medians[n]:.0f}" + (f" ({medians[n] / base:.2f}x)" if base else "")
                for n in names
            ]
            print(f"| {scenario} | {connection} | " + " | ".join(cells) + " |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    contextlib.suppress(KeyboardInterrupt)
    sys.exit(main())
