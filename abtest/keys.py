"""The Redis keyspace: the only place key names are built.

Every key starts with ``abtest:``.  One experiment's keys share the hash tag
``{slug}``, so they sit on one Redis Cluster slot and one Lua script may touch
them all.  The editors' sessions share ``{editors}`` (signing out everywhere
is one transaction over them), and the instance marker and its loss record
share ``{instance}``.  The experiments index has no tag: it is one key, read
and written by commands of its own, never in a script or transaction with an
experiment's keys (creating an experiment writes its definition first, then
adds it to the index).

=================================  ==========  ================================================
key                                type        meaning
=================================  ==========  ================================================
``abtest:experiments``             sorted set  every experiment slug, scored by creation time
                                               (Unix seconds); readers skip an entry whose
                                               meta is missing
``abtest:{slug}:meta``             hash        ``definition`` (JSON: title, headlines, body
                                               paragraphs), ``status`` (draft | scheduled |
                                               running | paused | decided), ``winner``
                                               (variant id or empty), ``created_at``,
                                               ``updated_at`` (Unix seconds),
                                               ``allocation`` (clicks | winner; absent:
                                               clicks), ``caring`` (threshold of caring, a
                                               share of the leader's CTR; absent: 0.02),
                                               ``webhook`` (the story's webhook URL; absent:
                                               none), ``starts_at`` (a scheduled story's
                                               start, Unix seconds in Redis's clock),
                                               ``archived_at`` (present while archived),
                                               ``rank`` (its front-page place, higher
                                               first; absent: ``created_at``),
                                               ``quiet_until`` (after an edit, no counting
                                               before this, microseconds in Redis's clock)
``abtest:{slug}:counts``           hash        ``i:<variant>`` impressions (readers served),
                                               ``s:<variant>`` seen impressions,
                                               ``c:<variant>`` clicks and ``q:<variant>``
                                               quality clicks, the test's totals; never reset
``abtest:{slug}:m:<minute>``       hash        the same fields for one minute (``<minute>`` =
                                               Unix seconds // 60); expires after the minute
                                               retention (ABTEST_MINUTE_RETENTION)
``abtest:{slug}:h:<hour>``         hash        the same for one hour (Unix seconds // 3600);
                                               expires after ABTEST_HOUR_RETENTION
``abtest:{slug}:clicked``          hash        click de-duplication: field ``<visitor ref>``
                                               (the click token's 96-bit hash of the visitor
                                               id), value ``<variant>``: this visitor's click
                                               was counted.  One field per counted click; on
                                               Redis >= 7.4 each field expires (HEXPIRE) after
                                               the marker lifetime, elsewhere the hash expires
                                               that long after its last click
``abtest:{slug}:seen``             hash        seen de-duplication: field ``<visitor ref>``,
                                               value ``<variant>``: this visitor's impression
                                               was counted as seen (by a beacon, or by their
                                               click).  Expires like the click markers, but
                                               after an hour (a seen beacon's tokens are at
                                               most that old; the visitor cookie remembers
                                               the seen impression after that)
``abtest:{slug}:engaged``          hash        quality-click de-duplication: field ``<visitor
                                               ref>``, value ``<variant>``: this visitor's
                                               click was counted as a quality click.  Expires
                                               like the click markers
``abtest:{slug}:budget:<window>``  hash        the counting budgets of one window
                                               (``<window>`` = Unix seconds //
                                               ABTEST_BUDGET_WINDOW): ``i<client>`` and
                                               ``c<client>``, the impressions and clicks each
                                               client address asked to count, ``s<client>``
                                               the seen beacons; ``<client>`` is
                                               a keyed 72-bit hash of the address (IPv6: its
                                               /64).  Expires a window after its last new
                                               client
``abtest:{slug}:excluded``         hash        readers served but deliberately not counted:
                                               ``i:<reason>:<variant>`` impressions and
                                               ``c:<reason>:<variant>`` clicks,
                                               ``s:<reason>:<variant>`` seen impressions,
                                               ``<reason>``
                                               one of bot, prefetch, rate-limited; never reset
``abtest:{slug}:audit``            list        JSON audit entries (who, when, action, stats),
                                               newest first
``abtest:{slug}:notified``         hash        webhook events already sent for this round of
                                               the test: field ``proven-winner`` or
                                               ``safe-to-stop``, value JSON (when, by which
                                               process); set once (HSETNX) by the process that
                                               sends, deleted when the test is reopened
                                               (:mod:`abtest.webhooks`)
``abtest:webhooks:evaluating``     string      held for an interval by the process evaluating
                                               the webhook events (only one at a time)
``abtest:{editors}:session:<id>``  string      one signed-in editor's session (Flask's tagged
                                               JSON: ``editor``, the CSRF secret, flashed
                                               messages); expires ABTEST_SESSION_IDLE after
                                               the editor's last request
``abtest:{editors}:editor:<n>``    set         the ids of the sessions of editor ``<n>`` (their
                                               user name), for signing them out everywhere;
                                               pruned at each sign-in
``abtest:signin:<digest>``         sorted set  sign-in attempts for one user name from one
                                               address (``<digest>`` hashes the pair), scored
                                               by time; expires with the lockout window
``abtest:{instance}``              string      a random id, written the first time abtest saw
                                               this Redis; missing while Redis answers means
                                               Redis lost its data (:mod:`abtest.watch`)
``abtest:{instance}:data-lost``    hash        the last loss noticed: ``noticed_at`` (Unix
                                               seconds), ``noticed_by`` (host:pid),
                                               ``previous`` (the lost id), and once an editor
                                               has seen it ``acknowledged_by``,
                                               ``acknowledged_at``; ``webhook_sent`` once
                                               the webhooks were sent for it
=================================  ==========  ================================================

Counters are written only by the Lua scripts in :mod:`abtest.scripts`, each in
one atomic step together with the per-minute and per-hour series, the click
marker and the budget; the bot and prefetch exclusions are tallied in each
process and added by its background refresher.

Memory: the counts, exclusions and definition are about 3 kB per
experiment, the series about 175 kB per day of traffic (docs/performance.md).
The click markers are one per counted click (so one address adds at most
its click budget per window): about 100 bytes each (80 with jemalloc, 13
more with per-field expiry), so 100,000 clicks are about 10 MB, where one
key per marker took about 135 bytes each.
The seen markers are one per visitor whose impression was seen (by a
beacon or a click) in the last hour, and the quality markers one per
quality click: about as much each as a click marker, so a test seen by
1,000,000 readers a day holds about 4 MB of seen markers (on Redis 7.4 and
later, where each expires by itself).
A window's budget hash holds about 80 bytes per address that counted an
impression there (twice that with a click), and lives two windows at most.
Give Redis a ``maxmemory`` with room for that and ``maxmemory-policy
noeviction``: under an eviction policy Redis would silently drop counts,
markers (a second click would count) or budgets; under noeviction a full
Redis refuses writes, the counting scripts fail, and readers are served
uncounted, as in an outage.
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
    "seen",
    "engaged",
    "budget",
    "excluded",
    "audit",
    "impression_field",
    "click_field",
    "seen_field",
    "quality_field",
    "excluded_field",
    "REASONS",
    "session",
    "editor_sessions",
    "sign_in_attempts",
    "INSTANCE",
    "DATA_LOST",
    "notified",
    "WEBHOOKS_EVALUATING",
]

PREFIX = "abtest:"
EXPERIMENTS = PREFIX + "experiments"
# One hash tag: the watch's script touches both.
INSTANCE = PREFIX + "{instance}"
DATA_LOST = INSTANCE + ":data-lost"


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


def clicked(slug: str) -> str:
    return _tagged(slug) + "clicked"


def seen(slug: str) -> str:
    return _tagged(slug) + "seen"


def engaged(slug: str) -> str:
    return _tagged(slug) + "engaged"


def budget(slug: str, window_number: int) -> str:
    return f"{_tagged(slug)}budget:{window_number}"


def excluded(slug: str) -> str:
    return _tagged(slug) + "excluded"


def audit(slug: str) -> str:
    return _tagged(slug) + "audit"


def impression_field(variant: str) -> str:
    return "i:" + variant


def click_field(variant: str) -> str:
    return "c:" + variant


def seen_field(variant: str) -> str:
    return "s:" + variant


def quality_field(variant: str) -> str:
    return "q:" + variant


#: Why a reader was served but deliberately not counted (the excluded hash's reasons).
REASONS = ("bot", "prefetch", "rate-limited")


def excluded_field(kind: str, reason: str, variant: str) -> str:
    """``kind`` is ``"i"`` (impressions) or ``"c"`` (clicks); ``reason`` one of :data:`REASONS`."""
    return f"{kind}:{reason}:{variant}"


# One hash tag: a session and its editor's set change together, in one transaction.
EDITORS = PREFIX + "{editors}:"


def session(session_id: str) -> str:
    return f"{EDITORS}session:{session_id}"


def editor_sessions(editor: str) -> str:
    return f"{EDITORS}editor:{editor}"


def sign_in_attempts(digest: str) -> str:
    return f"{PREFIX}signin:{digest}"


def notified(slug: str) -> str:
    return _tagged(slug) + "notified"


#: Held for one interval by the process evaluating the webhook events.
WEBHOOKS_EVALUATING = PREFIX + "webhooks:evaluating"
