"""The Lua scripts that write experiments and their counts, each in one atomic step.

Each opens with its KEYS/ARGV contract and what it returns.  Key names come
from :mod:`abtest.keys`; the count fields are ``i:<variant>`` (impressions)
and ``c:<variant>`` (clicks), as there.  The status names are those of
:mod:`abtest.model`.  :class:`abtest.store.RedisStore` runs them.

The two counting scripts have the settings written into them
(:func:`counting_script`: the series' retention, the budgets and how click
markers expire), so the busiest script of all carries four arguments, not
nine.
"""

from __future__ import annotations

__all__ = [
    "IMPRESSION",
    "CLICK",
    "CREATE",
    "SET_STATUS",
    "SET_SETTINGS",
    "AUDIT_KEPT",
    "counting_script",
]

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] this window's budget hash, KEYS[6] excluded hash
#: ARGV[1] variant id, ARGV[2] "1" to get the counts back,
#: ARGV[3] deadline (microseconds in Redis's clock; "" for none),
#: ARGV[4] the client's budget field ("" for no budget)
#:
#: Counts one impression if, and only if, the experiment is running, the
#: script runs by the deadline (``TIME``: a script that runs after its reader
#: gave up counts nothing) and the client has counted fewer than
#: {impression_budget} impressions in this window (past it, the impression is
#: added to the excluded hash as rate-limited instead).  A series or budget
#: key gets its TTL when it gets a new field, not on every write.
#: Returns the status alone ("" = no such experiment); {status, winner} once
#: decided; with ARGV[2] = "1", {status, winner, counts hash as a flat list},
#: from which the caller refreshes its posterior without another round trip;
#: and when running but not counted, {status, "", counts or {}, reason} with
#: reason "late" (nothing written) or "rate-limited".
IMPRESSION = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'running' then
  if ARGV[3] ~= '' then
    local now = redis.call('TIME')
    if now[1] * 1000000 + now[2] > tonumber(ARGV[3]) then return {status, '', {}, 'late'} end
  end
  if ARGV[4] ~= '' then
    local used = redis.call('HINCRBY', KEYS[5], 'i' .. ARGV[4], 1)
    if used == 1 then redis.call('EXPIRE', KEYS[5], {budget_ttl}) end
    if used > {impression_budget} then
      redis.call('HINCRBY', KEYS[6], 'i:rate-limited:' .. ARGV[1], 1)
      local counts = {}
      if ARGV[2] == '1' then counts = redis.call('HGETALL', KEYS[2]) end
      return {status, '', counts, 'rate-limited'}
    end
  end
  local field = 'i:' .. ARGV[1]
  redis.call('HINCRBY', KEYS[2], field, 1)
  if redis.call('HINCRBY', KEYS[3], field, 1) == 1 then
    redis.call('EXPIRE', KEYS[3], {minute_ttl})
  end
  if redis.call('HINCRBY', KEYS[4], field, 1) == 1 then
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
#: KEYS[5] this window's budget hash, KEYS[6] excluded hash, KEYS[7] click markers hash
#: ARGV[1] variant id, ARGV[2] visitor ref (the marker's field), ARGV[3] marker TTL (s),
#: ARGV[4] deadline (microseconds in Redis's clock; "" for none),
#: ARGV[5] the client's budget field ("" for no budget)
#:
#: Counts the click only while running, only by the deadline, never past the
#: variant's impressions, only once per visitor (the visitor's field in the
#: markers hash), and only while the client has counted fewer than
#: {click_budget} clicks in this window (past it, the click is added to the
#: excluded hash as rate-limited instead, and no marker is set).  Each counted
#: click sets its marker, which expires after ARGV[3] seconds: by its own
#: field (HEXPIRE, Redis >= 7.4) in the script :func:`counting_script` makes
#: with ``field_ttl=True``, else by the whole hash, ARGV[3] after its last
#: click; so markers never outnumber the counted clicks.
#: Returns 1 (counted) or 0 (a repeat, or more clicks than impressions) while
#: running, {0, reason} when not counted for reason "late" (nothing written)
#: or "rate-limited", else the status ("" = no such experiment).
CLICK = """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or '' end
if ARGV[4] ~= '' then
  local now = redis.call('TIME')
  if now[1] * 1000000 + now[2] > tonumber(ARGV[4]) then return {0, 'late'} end
end
local shown, clicked = 'i:' .. ARGV[1], 'c:' .. ARGV[1]
local seen = redis.call('HMGET', KEYS[2], shown, clicked)
if tonumber(seen[1] or '0') <= tonumber(seen[2] or '0') then return 0 end
if redis.call('HEXISTS', KEYS[7], ARGV[2]) == 1 then return 0 end
if ARGV[5] ~= '' then
  local used = redis.call('HINCRBY', KEYS[5], 'c' .. ARGV[5], 1)
  if used == 1 then redis.call('EXPIRE', KEYS[5], {budget_ttl}) end
  if used > {click_budget} then
    redis.call('HINCRBY', KEYS[6], 'c:rate-limited:' .. ARGV[1], 1)
    return {0, 'rate-limited'}
  end
end
redis.call('HSET', KEYS[7], ARGV[2], ARGV[1])
{marker_expiry}
redis.call('HINCRBY', KEYS[2], clicked, 1)
if redis.call('HINCRBY', KEYS[3], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[3], {minute_ttl})
end
if redis.call('HINCRBY', KEYS[4], clicked, 1) == 1 then
  redis.call('EXPIRE', KEYS[4], {hour_ttl})
end
return 1
"""

#: How a counted click's marker expires: per field where Redis has HEXPIRE
#: (7.4 and later), else the whole hash, a marker lifetime after its last click.
_FIELD_EXPIRY = "redis.call('HEXPIRE', KEYS[7], ARGV[3], 'FIELDS', 1, ARGV[2])"
_HASH_EXPIRY = "redis.call('EXPIRE', KEYS[7], ARGV[3])"

#: KEYS[1] meta hash
#: ARGV[1] definition JSON, ARGV[2] now (s), ARGV[3] allocation mode,
#: ARGV[4] threshold of caring (a share of the leader's CTR)
#:
#: Creates the experiment, running, unless it exists; never touches counts.
#: Returns {1, created_at} if created, {0, created_at as stored} if it was
#: already there.  The experiments index is not written here: it lives
#: outside the experiment's hash tag (on a Redis Cluster, on another slot),
#: so the caller adds the slug to it with that created_at afterwards.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'created_at') or '0'}
end
redis.call('HSET', KEYS[1], 'definition', ARGV[1], 'status', 'running', 'winner', '',
           'created_at', ARGV[2], 'updated_at', ARGV[2], 'allocation', ARGV[3],
           'caring', ARGV[4])
return {1, ARGV[2]}
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


def counting_script(
    script: str,
    minute_ttl: int,
    hour_ttl: int,
    budget_ttl: int = 3600,
    impression_budget: int = 0,
    click_budget: int = 0,
    field_ttl: bool = False,
) -> str:
    """A counting script with the settings written in: the series' retention
    and the budgets' TTL (s), the budgets per client and window, and (the
    click script) how markers expire.  A budget of 0 is no budget: the caller
    then sends no budget field."""
    values = {
        "{minute_ttl}": minute_ttl,
        "{hour_ttl}": hour_ttl,
        "{budget_ttl}": budget_ttl,
        "{impression_budget}": impression_budget,
        "{click_budget}": click_budget,
    }
    for name, value in values.items():
        script = script.replace(name, str(int(value)))
    return script.replace("{marker_expiry}", _FIELD_EXPIRY if field_ttl else _HASH_EXPIRY)
