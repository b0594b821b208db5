"""The Lua scripts that write experiments and their counts, each in one atomic step.

Each opens with its KEYS/ARGV contract and what it returns.  Key names come
from :mod:`abtest.keys`; the count fields are ``i:<variant>`` (impressions)
and ``c:<variant>`` (clicks), as there.  The status names are those of
:mod:`abtest.model`.  :class:`abtest.store.RedisStore` runs them.

The two counting scripts have the series' retention written into them
(:func:`with_ttls`), so the busiest script of all carries two arguments,
not four.
"""

from __future__ import annotations

__all__ = [
    "IMPRESSION",
    "CLICK",
    "CREATE",
    "SET_STATUS",
    "SET_SETTINGS",
    "AUDIT_KEPT",
    "with_ttls",
]

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash
#: ARGV[1] impression field ("i:<variant>"), ARGV[2] "1" to get the counts back
#:
#: Counts one impression if, and only if, the experiment is running.  A series
#: key gets its TTL when it is created (its first field reaches 1), not on
#: every write.
#: Returns the status alone ("" = no such experiment); {status, winner} once
#: decided; with ARGV[2] = "1", {status, winner, counts hash as a flat list},
#: from which the caller refreshes its posterior without another round trip.
IMPRESSION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
  if redis.call('HINCRBY', KEYS[3], ARGV[1], 1) == 1 then
    redis.call('EXPIRE', KEYS[3], {minute_ttl})
  end
  if redis.call('HINCRBY', KEYS[4], ARGV[1], 1) == 1 then
    redis.call('EXPIRE', KEYS[4], {hour_ttl})
  end
end
if ARGV[2] == '1' then
  return {status, redis.call('HGET', KEYS[1], 'winner') or '', redis.call('HGETALL', KEYS[2])}
end
if status == 'decided' then return {status, redis.call('HGET', KEYS[1], 'winner') or ''} end
return status
"""

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] this visitor's click marker
#: ARGV[1] variant id, ARGV[2] marker TTL (s)
#:
#: Counts the click only while running, only once per visitor (SET NX on the
#: marker), and never past the variant's impressions.
#: Returns 1 (counted) or 0 while running, else the status ("" = no such experiment).
CLICK = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or '' end
local shown, clicked = 'i:' .. ARGV[1], 'c:' .. ARGV[1]
local seen = redis.call('HMGET', KEYS[2], shown, clicked)
if tonumber(seen[1] or '0') <= tonumber(seen[2] or '0') then return 0 end
if not redis.call('SET', KEYS[5], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[2], clicked, 1)
if redis.call('HINCRBY', KEYS[3], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[3], {minute_ttl})
end
if redis.call('HINCRBY', KEYS[4], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[4], {hour_ttl})
end
return 1
"""

#: KEYS[1] meta hash, KEYS[2] the experiments index
#: ARGV[1] slug, ARGV[2] definition JSON, ARGV[3] now (s), ARGV[4] allocation mode,
#: ARGV[5] threshold of caring (a share of the leader's CTR)
#:
#: Creates the experiment, running, unless it exists; never touches counts.
#: Returns 1 if created, 0 if it was already there.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'definition', ARGV[2], 'status', 'running', 'winner', '',
           'created_at', ARGV[3], 'updated_at', ARGV[3], 'allocation', ARGV[4],
           'caring', ARGV[5])
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] new status, ARGV[2] winner ('' for none), ARGV[3] now (s), ARGV[4] audit entry JSON,
#: ARGV[5] expected current status ('' = any), ARGV[6] audit entries kept
#:
#: Changes status and winner and appends the audit entry, together.
#: Returns 1 if changed, 0 if the experiment is missing or not in the expected status.
SET_STATUS = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
if ARGV[5] ~= '' and current ~= ARGV[5] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'winner', ARGV[2], 'updated_at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] allocation mode, ARGV[2] threshold of caring, ARGV[3] now (s),
#: ARGV[4] audit entry JSON, ARGV[5] audit entries kept
#:
#: Changes the allocation mode and the threshold of caring and appends the
#: audit entry, together; the status and counts are untouched.
#: Returns 1 if changed, 0 if the experiment is missing.
SET_SETTINGS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'allocation', ARGV[1], 'caring', ARGV[2], 'updated_at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
return 1
"""

#: Audit entries kept per experiment (SET_STATUS's ARGV[6], SET_SETTINGS's ARGV[5]).
AUDIT_KEPT = 1000


def with_ttls(script: str, minute_ttl: int, hour_ttl: int) -> str:
    """A counting script with the series' retention (s) written in."""
    return script.replace("{minute_ttl}", str(int(minute_ttl))).replace(
        "{hour_ttl}", str(int(hour_ttl))
    )
