"""Redis memory per experiment after 1,000,000 impressions, 300,000 of them seen,
20,000 clicks and 5,000 quality clicks.

    python bench/memory.py [--impressions 1000000] [--seen 300000] [--clicks 20000]
                           [--quality 5000] [--hours 24]

Starts a private redis-server, creates the seed experiment and counts the
impressions and clicks through the real Lua scripts (RedisStore), spread
evenly over ``--hours`` of simulated time so the per-minute and per-hour
series fill as they would in a day of traffic.  Reports MEMORY USAGE per key
family and the growth of ``used_memory``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import scratch_redis  # noqa: E402

from abtest.model import seed_definition  # noqa: E402
from abtest.store import RedisStore  # noqa: E402

START = 1_790_000_000.0
BATCH = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impressions", type=int, default=1_000_000)
    parser.add_argument("--seen", type=int, default=300_000)
    parser.add_argument("--clicks", type=int, default=20_000)
    parser.add_argument("--quality", type=int, default=5_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--click-ttl", type=int, default=31 * 86_400, help="marker lifetime (s)")
    parser.add_argument(
        "--seen-ttl", type=int, default=3600, help="seen marker lifetime (s): Service.SEEN_WITHIN"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="abtest-memory-"))
    socket = work / "redis.sock"
    server = subprocess.Popen(scratch_redis.command(work, socket=socket), stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(unix_socket_path=str(socket), decode_responses=True)
        scratch_redis.wait_ready(client)
        store = RedisStore(client, minute_ttl=2 * 86_400, hour_ttl=90 * 86_400)
        baseline = int(client.info("memory")["used_memory"])
        definition = seed_definition()
        store.create(definition, now=START)
        variants = definition.variant_ids
        span = args.hours * 3600
        started = time.perf_counter()
        for first in range(0, args.impressions, BATCH):
            numbers = range(first, min(first + BATCH, args.impressions))
            moment = START + span * first / args.impressions
            store.record_impressions(
                [(definition.slug, variants[n % 3]) for n in numbers], now=moment
            )
        # The readers who saw it are the first --seen (the clickers among them).
        seen_every = max(1, args.impressions // max(args.seen, 1))
        for first in range(0, args.seen, BATCH):
            numbers = range(first, min(first + BATCH, args.seen))
            moment = START + span * first * seen_every / args.impressions
            store.record_seen(
                [(definition.slug, variants[n % 3], f"visitor{n}") for n in numbers],
                args.seen_ttl,
                now=moment,
            )
        click_every = max(1, args.impressions // max(args.clicks, 1))
        for number in range(args.clicks):
            moment = START + span * number * click_every / args.impressions
            store.record_click(
                definition.slug,
                variants[number % 3],
                f"visitor{number}",
                args.click_ttl,
                now=moment,
                seen_ttl=args.seen_ttl,
            )
        for number in range(min(args.quality, args.clicks)):
            moment = START + span * number * click_every / args.impressions
            store.record_engaged(definition.slug, f"visitor{number}", args.click_ttl, now=moment)
        elapsed = time.perf_counter() - started

        families: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for key in client.scan_iter(match="abtest:*", count=5000):
            family = key.split(":")[2] if key.count(":") >= 2 else key
            family = {
                "m": "per-minute series",
                "h": "per-hour series",
                "clicked": "click de-duplication",
                "seen": "seen de-duplication",
                "engaged": "quality-click de-duplication",
            }.get(family, family)
            families[family][0] += 1
            families[family][1] += int(client.memory_usage(key, samples=0) or 0)
        used = int(client.info("memory")["used_memory"]) - baseline
        experiment = store.get(definition.slug)
    finally:
        server.terminate()
        server.wait()

    print(
        f"{sum(experiment.served):,} impressions ({sum(experiment.seen):,} seen), "
        f"{sum(experiment.all_clicks):,} clicks ({sum(experiment.quality_clicks):,} quality) "
        f"over {args.hours:g} h, counted in {elapsed:.1f} s\n"
    )
    print("| key family | keys | bytes (MEMORY USAGE) |")
    print("| --- | ---: | ---: |")
    total = 0
    for family, (count, size) in sorted(families.items(), key=lambda item: -item[1][1]):
        total += size
        print(f"| {family} | {count:,} | {size:,} |")
    print(f"| all keys of the experiment | {sum(c for c, _ in families.values()):,} | {total:,} |")
    print(f"\nused_memory growth: {used:,} bytes ({used / 2**20:.1f} MiB)")
    for family, per, ttl in (
        ("click de-duplication", max(args.clicks, 1), args.click_ttl),
        ("seen de-duplication", max(sum(experiment.seen), 1), args.seen_ttl),
        ("quality-click de-duplication", max(sum(experiment.quality_clicks), 1), args.click_ttl),
    ):
        print(f"{family}: {families[family][1] / per:.0f} bytes per marker, expiring after {ttl} s")


if __name__ == "__main__":
    main()
