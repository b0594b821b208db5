"""RedisStore against a real Redis: atomic counts, series, de-duplication, scripts."""

from __future__ import annotations

import json

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from abtest import keys
from abtest.model import Definition
from abtest.store import RedisStore, StoreError

NOW = 1_790_000_000.0  # a fixed moment, so minute and hour buckets are known


@pytest.fixture
def store(redis_client) -> RedisStore:
    store = RedisStore(redis_client, minute_ttl=7200, hour_ttl=86_400)
    store.create(
        Definition(slug="vote", title="Vote", headlines=("Yes", "No", "Maybe"), body=("Text.",)),
        now=NOW,
    )
    return store


def test_create_is_idempotent_and_never_resets_counts(store):
    store.record_impressions([("vote", "a")], now=NOW)
    again = Definition(slug="vote", title="Other", headlines=("X", "Y"), body=("Other.",))
    assert store.create(again, now=NOW + 5) is False
    experiment = store.get("vote")
    assert experiment.definition.headlines == ("Yes", "No", "Maybe")
    assert experiment.impressions == (1, 0, 0)
    assert store.slugs() == ["vote"]


def test_a_reload_keeps_an_unchanged_definition_and_sees_a_changed_one(store):
    first = store.get("vote").definition
    assert store.load_all()[0].definition is first  # the same object: page caches hit
    changed = Definition(slug="vote", title="Vote", headlines=("Yes", "No"), body=("New.",))
    store.redis.hset(keys.meta("vote"), "definition", json.dumps(changed.to_json()))
    assert store.get("vote").definition == changed


def test_impression_returns_fresh_counts_and_status(store):
    (first,) = store.record_impressions([("vote", "b")], now=NOW)
    assert first.counted and first.status == "running" and first.winner is None
    assert first.counts == {"i:b": 1}
    (second,) = store.record_impressions([("vote", "b")], now=NOW)
    assert second.counts == {"i:b": 2}
    (quiet,) = store.record_impressions([("vote", "b")], now=NOW, with_counts=[False])
    assert quiet.counted and quiet.counts is None
    assert store.get("vote").impressions == (0, 3, 0)


def test_nothing_is_counted_unless_running(store):
    store.set_status("vote", "paused", None, {"action": "pause"})
    (paused,) = store.record_impressions([("vote", "a")], now=NOW)
    assert not paused.counted and paused.status == "paused"
    store.set_status("vote", "decided", "c", {"action": "decide"})
    (decided,) = store.record_impressions([("vote", "a")], now=NOW)
    assert decided.status == "decided" and decided.winner == "c"
    assert store.get("vote").impressions == (0, 0, 0)
    (missing,) = store.record_impressions([("nope", "a")], now=NOW)
    assert missing.status == "" and not missing.counted


def test_click_counts_once_per_visitor_and_never_past_impressions(store):
    assert not store.record_click("vote", "a", "v1", 60, now=NOW).counted  # no impression yet
    store.record_impressions([("vote", "a")], now=NOW)
    assert store.record_click("vote", "a", "v1", 60, now=NOW).counted
    assert not store.record_click("vote", "a", "v1", 60, now=NOW).counted  # once per visitor
    assert not store.record_click("vote", "a", "v2", 60, now=NOW).counted  # clicks <= impressions
    assert store.get("vote").clicks == (1, 0, 0)
    # One hash per experiment holds every marker, expiring with the marker lifetime
    # (each field by itself where Redis can, else the hash after its last click).
    assert store.redis.hgetall(keys.clicked("vote")) == {"v1": "a"}
    assert 0 < marker_ttl(store, "vote", "v1") <= 60
    assert not list(store.redis.scan_iter(match="abtest:{vote}:clicked:*"))


def marker_ttl(store, slug: str, visitor: str) -> int:
    """Seconds left of a click marker: its field's (HTTL) or its hash's."""
    if store.field_ttl:
        (ttl,) = store.redis.execute_command("HTTL", keys.clicked(slug), "FIELDS", 1, visitor)
        return ttl
    return store.redis.ttl(keys.clicked(slug))


def test_series_sum_to_totals_and_expire(store):
    minutes = [NOW, NOW + 61, NOW + 125, NOW + 3700]
    for index, moment in enumerate(minutes):
        store.record_impressions([("vote", "abc"[index % 3])] * (index + 1), now=moment)
    store.record_click("vote", "a", "v1", 60, now=NOW + 3700)
    totals = store.get("vote")
    for resolution in ("minute", "hour"):
        points = store.series("vote", NOW - 60, NOW + 4000, resolution)
        impressions = [sum(c.get(f"i:{v}", 0) for _, c in points) for v in "abc"]
        clicks = [sum(c.get(f"c:{v}", 0) for _, c in points) for v in "abc"]
        assert tuple(impressions) == totals.impressions
        assert tuple(clicks) == totals.clicks
    assert len(store.series("vote", NOW - 60, NOW + 4000, "minute")) == 4
    assert len(store.series("vote", NOW - 60, NOW + 4000, "hour")) == 2
    minute_key = keys.minute("vote", int(NOW) // 60)
    assert 0 < store.redis.ttl(minute_key) <= 7200
    assert 0 < store.redis.ttl(keys.hour("vote", int(NOW) // 3600)) <= 86_400
    with pytest.raises(ValueError):
        store.series("vote", NOW, NOW, "day")


def test_scripts_survive_a_script_flush_without_double_counting(store):
    store.record_impressions([("vote", "a")], now=NOW)
    store.redis.script_flush()
    results = store.record_impressions([("vote", "a"), ("vote", "b")], now=NOW)
    assert [r.counted for r in results] == [True, True]
    assert store.get("vote").impressions == (2, 1, 0)
    store.redis.script_flush()
    store.record_click("vote", "b", "v9", 60, now=NOW)
    assert store.get("vote").clicks == (0, 1, 0)


def _evalsha_calls(client) -> int:
    """EVALSHA commands the server has run so far (its own tally)."""
    return client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def test_a_count_whose_reply_is_lost_is_sent_once(store, redis_client):
    """A script whose reply is lost may have run: sending it again could
    count twice.  So a count goes once, even on a client given retries."""
    pool = store.redis.connection_pool

    class LosesReplies(pool.connection_class):
        """Reads each reply off the socket (so the server has run the command),
        then reports it lost, as a socket timeout would."""

        losing = False  # set: the replies to scripts sent from now on are lost
        lost = False  # this connection's replies are being lost

        def send_packed_command(self, command, check_health=True):
            if self._sock is None:
                self.connect()  # its handshake comes through here too, and is not lost
            packed = b"".join(command) if isinstance(command, list) else command
            self.lost = LosesReplies.losing and b"EVALSHA" in packed
            super().send_packed_command(command, check_health)

        def read_response(self, *args, **kwargs):
            reply = super().read_response(*args, **kwargs)
            if self.lost:
                raise redis.TimeoutError("reply lost")
            return reply

    impatient = RedisStore(
        redis.Redis(
            connection_pool=redis.ConnectionPool(
                connection_class=LosesReplies, **pool.connection_kwargs
            ),
            retry=Retry(NoBackoff(), 3),
        ),
        minute_ttl=7200,
        hour_ttl=86_400,
    )
    impatient.record_impressions([("vote", "c")], now=NOW)  # loads the script, connects
    # One experiment, then two (the pipelined path).
    for visits, expected in (
        ([("vote", "a")], (1, 0, 1)),
        ([("vote", "a"), ("vote", "b")], (2, 1, 1)),
    ):
        before = _evalsha_calls(redis_client)
        LosesReplies.losing = True
        with pytest.raises(StoreError):
            impatient.record_impressions(visits, now=NOW)
        LosesReplies.losing = False
        # The server ran each count once (its own tally), not up to 4 times.
        assert _evalsha_calls(redis_client) - before == len(visits)
        assert store.get("vote").impressions == expected
    # The connection that lost a reply is not reused with that reply unread.
    (after,) = impatient.record_impressions([("vote", "c")], now=NOW)
    assert after.counts == {"i:a": 2, "i:b": 1, "i:c": 2}
    impatient.redis.close()


def test_redis_errors_leave_the_store_as_its_own_error(tmp_path):
    # Nothing above the store sees a redis type: a dead server is a StoreError,
    # with redis-py's error kept as its cause.
    dead = RedisStore(
        redis.Redis.from_url(f"unix://{tmp_path}/nothing-here.sock", socket_timeout=0.2),
        minute_ttl=7200,
        hour_ttl=86_400,
    )
    for call in (
        lambda: dead.record_impressions([("vote", "a")], now=NOW),
        lambda: dead.record_click("vote", "a", "v1", 60, now=NOW),
        dead.load_all,
        dead.ping,
    ):
        with pytest.raises(StoreError) as raised:
            call()
        assert not isinstance(raised.value, redis.RedisError)
        assert isinstance(raised.value.__cause__, redis.ConnectionError)


def test_status_change_is_conditional_and_audited(store):
    assert store.set_status(
        "vote", "decided", "b", {"action": "decide", "editor": "ed"}, expect="running"
    )
    assert not store.set_status("vote", "paused", None, {"action": "pause"}, expect="running")
    assert store.get("vote").status == "decided" and store.get("vote").winner == "b"
    assert [entry["action"] for entry in store.audit("vote")] == ["decide"]
    assert not store.set_status("nope", "paused", None, {"action": "pause"})


def test_keys_of_one_experiment_share_a_hash_tag():
    for key in (
        keys.meta("x"),
        keys.counts("x"),
        keys.minute("x", 1),
        keys.hour("x", 1),
        keys.clicked("x"),
        keys.budget("x", 1),
        keys.excluded("x"),
        keys.audit("x"),
    ):
        assert key.startswith("abtest:{x}:")


def test_settings_round_trip_and_old_meta_loads_with_the_defaults(store):
    # "vote" was created without settings: the defaults, maximize clicks at 2%.
    vote = store.get("vote")
    assert (vote.allocation, vote.caring) == ("clicks", 0.02)
    assert store.redis.hget(keys.meta("vote"), "allocation") == "clicks"
    # Meta written before the settings existed has neither field.
    store.redis.hdel(keys.meta("vote"), "allocation", "caring")
    assert (store.get("vote").allocation, store.get("vote").caring) == ("clicks", 0.02)
    poll = Definition(slug="poll", title="Poll", headlines=("Up", "Down"), body=("Text.",))
    assert store.create(poll, now=NOW, allocation="winner", caring=0.05)
    assert store.redis.hget(keys.meta("poll"), "allocation") == "winner"
    assert float(store.redis.hget(keys.meta("poll"), "caring")) == 0.05
    assert (store.get("poll").allocation, store.get("poll").caring) == ("winner", 0.05)


def test_settings_change_is_audited_and_refused_for_unknown_slugs(store):
    store.record_impressions([("vote", "a")], now=NOW)
    entry = {"action": "settings", "editor": "ed"}
    assert store.set_settings("vote", "winner", 0.01, entry, now=NOW + 60)
    vote = store.get("vote")
    assert (vote.allocation, vote.caring) == ("winner", 0.01)
    assert (vote.status, vote.impressions) == ("running", (1, 0, 0))  # untouched
    assert float(store.redis.hget(keys.meta("vote"), "updated_at")) == NOW + 60
    assert store.audit("vote") == [entry]
    assert not store.set_settings("nope", "winner", 0.01, entry)
    assert not store.redis.exists(keys.meta("nope"), keys.audit("nope"))
