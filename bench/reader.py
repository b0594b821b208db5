"""Reader-path benchmark: abtest against the floor, side by side, in one run.

    python bench/reader.py [--server granian] [--workers 2] [--connections 32] [--duration 8]

Starts a private redis-server, the service under ``abtest serve`` and the
floor (bench/floor.py: a bare Flask view doing one HINCRBY, and a bare
"hello") under the same server with the same settings (abtest.server.serve:
granian by default, ``--server gunicorn`` for gunicorn's gthread workers), then
drives each scenario with wrk at a fixed concurrency, alternating service
and floor for several rounds.  Reports requests/s and p50/p99 latency
(medians over rounds) and the ratios service/floor.  Needs wrk (Debian:
``apt-get install wrk``).  The machine is noisy: read the ratios, not the
absolute numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import scratch_redis  # noqa: E402
from scratch_redis import free_port  # noqa: E402

from abtest import keys  # noqa: E402
from abtest.server import DEFAULT_SERVER, DEFAULT_THREADS, SERVERS  # noqa: E402
from abtest.tokens import ClickToken, ClickTokens, Visitor, VisitorCookies, visitor_ref  # noqa: E402

SECRET = "bench-secret-key-0123456789abcdef"
API_TOKEN = "bench-api-token"
SLUG = "colombia-china"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


def service_env(redis_url: str, work: Path) -> dict[str, str]:
    """The environment of a benchmarked ``abtest serve``: no inherited abtest
    settings, a private Redis and data directory, fixed secrets."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ABTEST_")} | {
        "REDIS_URL": redis_url,
        "ABTEST_SECRET_KEY": SECRET,
        "ABTEST_API_TOKEN": API_TOKEN,
        "ABTEST_DATA_DIR": str(work / "data"),
        "PYTHONPATH": str(REPO),
        # wrk is one address: budgets this large are checked on every count
        # (their cost is measured) but never reached (every count is made).
        "ABTEST_BUDGET_IMPRESSIONS": "1000000000",
        "ABTEST_BUDGET_CLICKS": "1000000000",
    }


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def process(args: list[str], env: dict, log: Path):
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


_LATENCY_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _LATENCY_UNITS[unit]


def wrk(url: str, args, headers: dict | None = None, script: Path | None = None, env=None) -> dict:
    command = [
        "wrk",
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{args.duration}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run(
        command + [url], capture_output=True, text=True, env=env, check=True
    ).stdout
    result = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(re.search(r"\s50%\s+(\S+)", output).group(1)),
        "p99": _ms(re.search(r"\s99%\s+(\S+)", output).group(1)),
        "errors": 0,
    }
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    )
    return result


def returning_cookie(base: str) -> str:
    request = urllib.request.Request(base + "/", headers={"User-Agent": BROWSER})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Set-Cookie"].split(";", 1)[0]


def click_file(path: Path, count: int, variant_ids: tuple[str, ...]) -> Path:
    """Links and cookies of ``count`` distinct visitors, each shown one variant."""
    tokens = ClickTokens(SECRET, 86_400)
    cookies = VisitorCookies(SECRET)
    with path.open("w") as out:
        for number in range(count):
            variant = variant_ids[number % len(variant_ids)]
            visitor = Visitor(id=f"bench{os.getpid()}x{number}", assignments={SLUG: variant})
            token = tokens.dumps(ClickToken(SLUG, variant, visitor_ref(visitor.id)))
            out.write(f"/c/{token}\t{cookies.dumps(visitor)}\n")
    return path


def summarize(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99")} | {
        "errors": sum(run["errors"] for run in runs)
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server", choices=SERVERS, default=DEFAULT_SERVER, help="service's and floor's server"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", help="run only scenarios whose name contains this text")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="abtest-bench-"))
    redis_port, service_port, floor_port = free_port(), free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = service_env(redis_url, work)
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            process(
                scratch_redis.command(work, port=redis_port),
                env,
                work / "redis.log",
            )
        )
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        scratch_redis.wait_ready(client)
        stack.enter_context(
            process(
                [
                    sys.executable,
                    "-m",
                    "abtest.cli",
                    "serve",
                    "--port",
                    str(service_port),
                    "--workers",
                    str(args.workers),
                    "--server",
                    args.server,
                ],
                env,
                work / "service.log",
            )
        )
        stack.enter_context(
            process(
                [sys.executable, str(HERE / "floor.py"), str(floor_port), str(args.workers)]
                + [args.server],
                env,
                work / "floor.log",
            )
        )
        service = f"http://127.0.0.1:{service_port}"
        floor = f"http://127.0.0.1:{floor_port}"
        wait_http(service + "/healthz")
        wait_http(floor + "/hello")

        # Clicks are counted only up to impressions: give every variant plenty.
        for variant in "abc":
            client.hset(keys.counts(SLUG), keys.impression_field(variant), 10_000_000)
        cookie = returning_cookie(service)
        headers = {"User-Agent": BROWSER}
        clicks_needed = int(args.duration * 20_000)

        def click_run(url: str, fixed_path: str | None = None) -> dict:
            # The floor gets the same wrk script and cookies, sent to ``fixed_path``.
            path = click_file(work / "clicks.tsv", clicks_needed, ("a", "b", "c"))
            extra = {"CLICKS_PATH": fixed_path} if fixed_path else {}
            return wrk(
                url,
                args,
                headers=headers,
                script=HERE / "clicks.lua",
                env=os.environ
                | {"CLICKS_FILE": str(path), "WRK_THREADS": str(args.threads)}
                | extra,
            )

        scenarios = {
            "new visitor at /": (
                lambda: wrk(service + "/", args, headers),
                lambda: wrk(floor + "/hincr", args, headers),
                "HINCRBY floor",
            ),
            "returning visitor at /": (
                lambda: wrk(service + "/", args, headers | {"Cookie": cookie}),
                lambda: wrk(floor + "/hello", args, headers | {"Cookie": cookie}),
                "hello floor",
            ),
            "click /c/<token>": (
                lambda: click_run(service),
                lambda: click_run(floor, "/hincr"),
                "HINCRBY floor",
            ),
            "assignment API (new visitor)": (
                lambda: wrk(service + f"/api/v1/experiments/{SLUG}/assignment", args, headers),
                lambda: wrk(floor + "/hincr", args, headers),
                "HINCRBY floor",
            ),
            "stats API": (
                lambda: wrk(
                    service + f"/api/v1/experiments/{SLUG}/stats",
                    args,
                    headers | {"Authorization": f"Bearer {API_TOKEN}"},
                ),
                lambda: wrk(floor + "/hincr", args, headers),
                "HINCRBY floor",
            ),
        }
        # Warm both up (imports, first connections, JIT-free but caches).
        wrk(service + "/", args, headers)
        wrk(floor + "/hincr", args, headers)

        results = {}
        for name, (run_service, run_floor, floor_name) in scenarios.items():
            if args.only and args.only not in name:
                continue
            service_runs, floor_runs = [], []
            for _ in range(args.rounds):
                service_runs.append(run_service())
                floor_runs.append(run_floor())
            mine, base = summarize(service_runs), summarize(floor_runs)
            results[name] = {
                "service": mine,
                "floor": base,
                "round_ratios": [
                    round(m["rps"] / b["rps"], 3)
                    for m, b in zip(service_runs, floor_runs, strict=True)
                ],
                "floor_name": floor_name,
                "rps_ratio": mine["rps"] / base["rps"],
                "p99_ratio": mine["p99"] / base["p99"],
            }
            print(
                f"{name}: {mine['rps']:.0f} req/s vs {base['rps']:.0f} ({floor_name}), "
                f"ratio {results[name]['rps_ratio']:.2f}; "
                f"p99 {mine['p99']:.2f} ms vs {base['p99']:.2f} ms",
                file=sys.stderr,
            )

        memory = measure_memory(client, service_port)

    print_table(results, memory, args)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "results": results,
                    "memory": memory,
                    "settings": vars(args) | {"json": str(args.json)},
                },
                indent=2,
            )
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


def measure_memory(client: redis.Redis, service_port: int) -> dict:
    """Resident memory of the service's workers (from /proc)."""
    found = subprocess.run(
        ["pgrep", "-f", f"abtest.cli serve --port {service_port}"], capture_output=True, text=True
    ).stdout.split()
    rss = []
    for pid in found:
        for child in (
            Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if Path(f"/proc/{pid}/task/{pid}/children").exists()
            else []
        ):
            with contextlib.suppress(FileNotFoundError):
                status = Path(f"/proc/{child}/status").read_text()
                rss.append(int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024)
    return {"worker_rss_mib": rss}


def print_table(results: dict, memory: dict, args) -> None:
    print(
        f"\nworkers={args.workers} ({args.server}, {DEFAULT_THREADS} threads each), "
        f"wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s, {args.rounds} rounds alternating, medians\n"
    )
    print(
        "| scenario | abtest req/s | floor | floor req/s | req/s ratio | ratio per round "
        "| abtest p50 / p99 ms | floor p50 / p99 ms | p99 ratio | errors |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        mine, base = r["service"], r["floor"]
        rounds = r["round_ratios"]
        print(
            f"| {name} | {mine['rps']:.0f} | {r['floor_name']} | {base['rps']:.0f} "
            f"| {r['rps_ratio']:.2f} | {min(rounds):.2f} to {max(rounds):.2f} "
            f"| {mine['p50']:.2f} / {mine['p99']:.2f} | {base['p50']:.2f} / {base['p99']:.2f} "
            f"| {r['p99_ratio']:.2f} | {mine['errors']} / {base['errors']} |"
        )
    if memory["worker_rss_mib"]:
        resident = ", ".join(f"{m:.0f} MiB" for m in memory["worker_rss_mib"])
        print(f"\nservice worker resident memory: {resident}")


if __name__ == "__main__":
    sys.exit(main())
