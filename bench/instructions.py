"""CPU instructions per request: the service's reader path against the floor, exactly.

    python bench/instructions.py [--requests 1000] [--only new]   (needs: apt-get install valgrind)

The shared 2-core machine is too noisy to time a change worth a few percent,
and bench/calls.py counts calls, which weigh very differently.  This counts
the instructions the CPU executes: each scenario runs in-process (as in
bench/calls.py: no HTTP server, no load generator) under valgrind's cachegrind,
once with a warm-up only and once with ``--requests`` more requests; the
difference divided by ``--requests`` is the instructions per request, the
same to within 0.1% from run to run.  Redis runs outside valgrind, so its own
work (the Lua scripts) is not in the figures, nor are the server's parsing
and the kernel's, which the service and the floor share.

Under valgrind a request takes about 50 times as long, so the service's
time-based work is scaled to match: the background refresh is off and a
counted impression asks for fresh counts every 5 s instead of 0.1 s, about as
often per request as at full speed.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import scratch_redis  # noqa: E402
from calls import apps, reader_scenarios  # noqa: E402

WARM_UP = 50
_REFS = re.compile(r"I\s+refs:\s+([0-9,]+)")


def child(scenario: str, side: str, requests: int, links: int, url: str, work: Path) -> None:
    """Run one side of one scenario ``WARM_UP + requests`` times (under valgrind).

    ``links`` click links are made either way, so that the set-up is the same
    in both runs and cancels out of the difference.
    """
    app, floor_app = apps(url, work)
    service = app.extensions["abtest"]["service"]
    service.snapshot.refresh_interval = 3600.0
    service.COUNTS_MAX_AGE = 5.0
    mine, floor, _ = reader_scenarios(app, floor_app, WARM_UP + links)[scenario]
    request = mine if side == "service" else floor
    for _ in range(WARM_UP):
        request()
    gc.collect()
    gc.freeze()  # the start-up objects: no full collection of them lands in one run only
    for _ in range(requests):
        request()
    service.stop()


def instructions(scenario: str, side: str, requests: int, links: int, url: str, work: Path) -> int:
    """Instructions the process executes in all, for this many requests after the warm-up."""
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        scenario,
        side,
        str(requests),
        str(links),
        url,
        str(work),
    ]
    # One BLAS thread (its spinning workers would add noise); fixed string hashing;
    # a Redis timeout for a process running 50 times slower (a count that timed
    # out would be served uncounted, a different request).
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "ABTEST_REDIS_TIMEOUT": "10",
        # One address for every request: budgets checked but never reached.
        "ABTEST_BUDGET_IMPRESSIONS": "1000000000",
        "ABTEST_BUDGET_CLICKS": "1000000000",
    }
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{scenario} ({side}) failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--only", help="run only scenarios whose name contains this text")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        scenario, side, requests, links, url, work = args.child
        child(scenario, side, int(requests), int(links), url, Path(work))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2

    with scratch_redis.running("abtest-instructions-") as (url, work):
        app, floor_app = apps(url, work)
        names = {name: floor for name, (_, _, floor) in reader_scenarios(app, floor_app, 0).items()}
        app.extensions["abtest"]["service"].stop()
        print("| scenario | abtest per request | floor | floor per request | floor / abtest |")
        print("| --- | ---: | --- | ---: | ---: |")
        for name, floor_name in names.items():
            if args.only and args.only not in name:
                continue
            per_request = {}
            for side in ("service", "floor"):
                total = instructions(name, side, args.requests, args.requests, url, work)
                base = instructions(name, side, 0, args.requests, url, work)
                per_request[side] = (total - base) / args.requests
            ours, theirs = per_request["service"], per_request["floor"]
            print(f"| {name} | {ours:,.0f} | {floor_name} | {theirs:,.0f} | {theirs / ours:.2f} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
