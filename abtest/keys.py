"""The Redis keyspace: the only place key names are built.

Every key starts with ``abtest:``.  One experiment's keys share the hash tag
``{slug}``, so they sit on one Redis Cluster slot and one Lua script may touch
them all.

=================================  ==========  ================================================
key                                type        meaning
=================================  ==========  ================================================
``abtest:experiments``             sorted set  every experiment slug, scored by creation time
                                               (Unix seconds)
``abtest:{slug}:meta``             hash        ``definition`` (JSON: title, headlines, body
                                               paragraphs), ``status`` (running | paused |
                                               decided), ``winner`` (variant id or empty),
                                               ``created_at``, ``updated_at`` (Unix seconds),
                                               ``allocation`` (clicks | winner; absent:
                                               clicks), ``caring`` (threshold of caring, a
                                               share of the leader's CTR; absent: 0.02)
``abtest:{slug}:counts``           hash        ``i:<variant>`` impressions and ``c:<variant>``
                                               clicks, the test's totals; never reset
``abtest:{slug}:m:<minute>``       hash        the same fields for one minute (``<minute>`` =
                                               Unix seconds // 60); expires after the minute
                                               retention (ABTEST_MINUTE_RETENTION)
``abtest:{slug}:h:<hour>``         hash        the same for one hour (Unix seconds // 3600);
                                               expires after ABTEST_HOUR_RETENTION
``abtest:{slug}:clicked:<visitor>`` string     ``<variant>``: this visitor's click was counted;
                                               expires with the click token's lifetime, which
                                               bounds de-duplication memory
``abtest:{slug}:audit``            list        JSON audit entries (who, when, action, stats),
                                               newest first
=================================  ==========  ================================================

Counters are written only by the Lua scripts in :mod:`abtest.store`, each in
one atomic step together with the per-minute and per-hour series.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "EXPERIMENTS",
    "meta",
    "counts",
    "minute",
    "hour",
    "clicked",
    "audit",
    "impression_field",
    "click_field",
]

PREFIX = "abtest:"
EXPERIMENTS = PREFIX + "experiments"


def _tagged(slug: str) -> str:
    return f"{PREFIX}{{{slug}}}:"


def meta(slug: str) -> str:
    return _tagged(slug) + "meta"


def counts(slug: str) -> str:
    return _tagged(slug) + "counts"


def minute(slug: str, minute_number: int) -> str:
    return f"{_tagged(slug)}m:{minute_number}"


def hour(slug: str, hour_number: int) -> str:
    return f"{_tagged(slug)}h:{hour_number}"


def clicked(slug: str, visitor: str) -> str:
    return f"{_tagged(slug)}clicked:{visitor}"


def audit(slug: str) -> str:
    return _tagged(slug) + "audit"


def impression_field(variant: str) -> str:
    return "i:" + variant


def click_field(variant: str) -> str:
    return "c:" + variant
