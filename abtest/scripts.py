"""The Lua scripts that write experiments and their counts, each in one atomic step.

Each opens with its KEYS/ARGV contract and what it returns.  Key names come
from :mod:`abtest.keys`; the count fields are ``i:<variant>`` (impressions:
readers served), ``s:<variant>`` (seen impressions), ``c:<variant>`` (clicks)
and ``q:<variant>`` (quality clicks), as there.  The status names are those of
:mod:`abtest.model`.  :class:`abtest.store.RedisStore` runs them.

The counting scripts have the settings written into them
(:func:`counting_script`: the series' retention, the budgets and how click
markers expire), so the busiest script of all carries four arguments, not
nine.
"""

from __future__ import annotations

import re

__all__ = [
    "IMPRESSION",
    "CLICK",
    "SEEN",
    "ENGAGED",
    "CREATE",
    "SET_STATUS",
    "SET_SETTINGS",
    "START",
    "SCHEDULE",
    "EDIT",
    "ARCHIVE",
    "SET_RANK",
    "AUDIT_KEPT",
    "counting_script",
]

#: The counting scripts' shared steps, written once and put in where a script
#: says ``{count:<variable>}`` or ``{late:<n>}`` (:func:`_steps`, when this
#: module is imported):
#:
#: ``{count:field}`` adds one to the field the Lua variable ``field`` names, in
#: the counts hash (KEYS[2]) and this minute's and this hour's series (KEYS[3],
#: KEYS[4]); a series key gets its TTL when it gets a new field, not on every
#: write.
_COUNT = """redis.call('HINCRBY', KEYS[2], FIELD, 1)
if redis.call('HINCRBY', KEYS[3], FIELD, 1) == 1 then
  redis.call('EXPIRE', KEYS[3], {minute_ttl})
end
if redis.call('HINCRBY', KEYS[4], FIELD, 1) == 1 then
  redis.call('EXPIRE', KEYS[4], {hour_ttl})
end"""
#: ``{late:n}`` returns {0, "late"}, writing nothing, when ARGV[n] (a deadline in
#: microseconds of Redis's clock, "" for none) has passed.
_LATE = """if ARGV[N] ~= '' then
  local now = redis.call('TIME')
  if now[1] * 1000000 + now[2] > tonumber(ARGV[N]) then return {0, 'late'} end
end"""
_STEP = re.compile(r"\{(count|late):(\w+)\}")


def _steps(script: str) -> str:
    """``script`` with its shared steps written out."""

    def step(found: re.Match) -> str:
        kind, name = found.groups()
        return _COUNT.replace("FIELD", name) if kind == "count" else _LATE.replace("N", name)

    return _STEP.sub(step, script)


#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] this window's budget hash, KEYS[6] excluded hash
#: ARGV[1] variant id, ARGV[2] "1" to get the counts back,
#: ARGV[3] deadline (microseconds in Redis's clock; "" for none),
#: ARGV[4] the client's budget field ("" for no budget)
#:
#: Counts one impression if, and only if, the experiment is running, the
#: script runs by the deadline (``TIME``: a script that runs after its reader
#: gave up counts nothing), the story's text was not changed in the last
#: moments (the meta hash's ``quiet_until``, microseconds in Redis's clock,
#: written by :data:`EDIT`: until then a worker may still serve the old text)
#: and the client has counted fewer than {impression_budget} impressions in
#: this window (past it, the impression is added to the excluded hash as
#: rate-limited instead).  A series or budget key gets its TTL when it gets a
#: new field, not on every write.
#: Returns the status alone ("" = no such experiment); {status, winner} once
#: decided; with ARGV[2] = "1", {status, winner, counts hash as a flat list},
#: from which the caller refreshes its posterior without another round trip;
#: and when running but not counted, {status, "", counts or {}, reason} with
#: reason "late" or "edited" (nothing written) or "rate-limited".
IMPRESSION = _steps("""
local meta = redis.call('HMGET', KEYS[1], 'status', 'quiet_until')
local status = meta[1]
if not status then return '' end
if status == 'running' then
  if ARGV[3] ~= '' or meta[2] then
    local time = redis.call('TIME')
    local now = time[1] * 1000000 + time[2]
    if ARGV[3] ~= '' and now > tonumber(ARGV[3]) then return {status, '', {}, 'late'} end
    if meta[2] and now < tonumber(meta[2]) then return {status, '', {}, 'edited'} end
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
  {count:field}
end
if ARGV[2] == '1' then
  return {status, redis.call('HGET', KEYS[1], 'winner') or '', redis.call('HGETALL', KEYS[2])}
end
if status == 'decided' then return {status, redis.call('HGET', KEYS[1], 'winner') or ''} end
return status
""")

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] this window's budget hash, KEYS[6] excluded hash, KEYS[7] click markers hash,
#: KEYS[8] seen markers hash
#: ARGV[1] variant id, ARGV[2] visitor ref (the marker's field), ARGV[3] marker TTL (s),
#: ARGV[4] deadline (microseconds in Redis's clock; "" for none),
#: ARGV[5] the client's budget field ("" for no budget), ARGV[6] seen marker TTL (s)
#:
#: Counts the click only while running, only by the deadline, never past the
#: variant's impressions, only once per visitor (the visitor's field in the
#: markers hash), and only while the client has counted fewer than
#: {click_budget} clicks in this window (past it, the click is added to the
#: excluded hash as rate-limited instead, and no marker is set).  Each counted
#: click sets its marker, which expires after ARGV[3] seconds: by its own
#: field (HEXPIRE, Redis >= 7.4) in the script :func:`counting_script` makes
#: with ``field_ttl=True``, else by the whole hash, ARGV[3] after its last
#: click; so markers never outnumber the counted clicks.  A reader who clicked
#: saw the headline: a counted click also counts the impression as seen,
#: unless a beacon did already (the seen marker), so clicks never outnumber
#: seen impressions.
#: Returns 1 (counted) or 0 (a repeat, or more clicks than impressions) while
#: running, {0, reason} when not counted for reason "late" (nothing written)
#: or "rate-limited", else the status ("" = no such experiment).
CLICK = _steps("""
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or '' end
{late:4}
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
{count:clicked}
if redis.call('HSETNX', KEYS[8], ARGV[2], ARGV[1]) == 1 then
  {seen_expiry}
  local field = 's:' .. ARGV[1]
  if tonumber(redis.call('HGET', KEYS[2], field) or '0') < tonumber(seen[1]) then
    {count:field}
  end
end
return 1
""")

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] this window's budget hash, KEYS[6] excluded hash, KEYS[7] seen markers hash,
#: KEYS[8] click markers hash
#: ARGV[1] variant id, ARGV[2] visitor ref (the marker's field), ARGV[3] marker TTL (s),
#: ARGV[4] deadline (microseconds in Redis's clock; "" for none),
#: ARGV[5] the client's budget field ("" for no budget)
#:
#: Counts one seen impression (a beacon said half the slot was in view for a
#: second) only while running, only by the deadline, only once per visitor
#: (the visitor's field in the seen markers hash, set here or by their
#: click; and a visitor whose click was counted, which counted their
#: impression as seen, has a click marker, which lives longer), never past
#: the variant's served impressions, and only while the client has sent
#: fewer than {impression_budget} seen beacons in this window (past it, the
#: beacon is added to the excluded hash as rate-limited).  Markers expire as
#: the click markers do, after ARGV[3] seconds.
#: Returns 1 (counted) or 0 (a repeat) while running, {0, reason} when not
#: counted for reason "late" or "rate-limited", else the status ("" = no
#: such experiment).
SEEN = _steps("""
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return status or '' end
{late:4}
if redis.call('HEXISTS', KEYS[7], ARGV[2]) == 1 then return 0 end
if redis.call('HEXISTS', KEYS[8], ARGV[2]) == 1 then return 0 end
local served, seen = 'i:' .. ARGV[1], 's:' .. ARGV[1]
local counts = redis.call('HMGET', KEYS[2], served, seen)
if tonumber(counts[1] or '0') <= tonumber(counts[2] or '0') then return 0 end
if ARGV[5] ~= '' then
  local used = redis.call('HINCRBY', KEYS[5], 's' .. ARGV[5], 1)
  if used == 1 then redis.call('EXPIRE', KEYS[5], {budget_ttl}) end
  if used > {impression_budget} then
    redis.call('HINCRBY', KEYS[6], 's:rate-limited:' .. ARGV[1], 1)
    return {0, 'rate-limited'}
  end
end
redis.call('HSET', KEYS[7], ARGV[2], ARGV[1])
{marker_expiry}
{count:seen}
return 1
""")

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] minute hash, KEYS[4] hour hash,
#: KEYS[5] click markers hash, KEYS[6] quality markers hash (the "engaged" hash)
#: ARGV[1] visitor ref, ARGV[2] marker TTL (s),
#: ARGV[3] deadline (microseconds in Redis's clock; "" for none)
#:
#: Counts a quality click: the visitor's click was counted (their click
#: marker, whose value is the headline they clicked), and their reading of
#: the story reached the engaged-time threshold (checked by the caller).
#: Only while running, only by the deadline, once per visitor (the quality
#: markers hash, expiring as the click markers do), so quality clicks never
#: outnumber clicks and need no budget of their own.
#: Returns the variant when counted, "" when not (no counted click, or a
#: repeat), {0, "late"} when late, else the status ("" = no such experiment)
#: prefixed by "!".
ENGAGED = _steps("""
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then return '!' .. (status or '') end
{late:3}
local variant = redis.call('HGET', KEYS[5], ARGV[1])
if not variant then return '' end
if redis.call('HSETNX', KEYS[6], ARGV[1], variant) == 0 then return '' end
{marker_expiry}
local quality = 'q:' .. variant
{count:quality}
return variant
""")

#: How a marker expires: per field where Redis has HEXPIRE (7.4 and later),
#: else the whole hash, a marker lifetime after its last new marker.  The
#: markers hash is the script's KEYS[{key}], the visitor's field ARGV[{field}]
#: and the lifetime ARGV[{ttl}].
_FIELD_EXPIRY = "redis.call('HEXPIRE', KEYS[{key}], ARGV[{ttl}], 'FIELDS', 1, ARGV[{field}])"
_HASH_EXPIRY = "redis.call('EXPIRE', KEYS[{key}], ARGV[{ttl}])"
#: Where each script keeps its markers: (KEYS index, ARGV index of the field,
#: ARGV index of the lifetime), for {marker_expiry} and (the click's seen
#: marker) {seen_expiry}.
_MARKERS = {
    "marker_expiry": {CLICK: (7, 2, 3), SEEN: (7, 2, 3), ENGAGED: (6, 1, 2)},
    "seen_expiry": {CLICK: (8, 2, 6)},
}

#: KEYS[1] meta hash
#: ARGV[1] definition JSON, ARGV[2] now (s), ARGV[3] allocation mode,
#: ARGV[4] threshold of caring (a share of the leader's CTR),
#: ARGV[5] (optional) status: running (the default), draft or scheduled,
#: ARGV[6] (optional) a scheduled experiment's start time (s),
#: ARGV[7], ARGV[8] (optional) the reward and the denominator ("" or absent: the defaults)
#:
#: Creates the experiment, in that status, unless it exists; never touches counts.
#: Returns {1, created_at} if created, {0, created_at as stored} if it was
#: already there.  The experiments index is not written here: it lives
#: outside the experiment's hash tag (on a Redis Cluster, on another slot),
#: so the caller adds the slug to it with that created_at afterwards.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGET', KEYS[1], 'created_at') or '0'}
end
redis.call('HSET', KEYS[1], 'definition', ARGV[1], 'status', ARGV[5] or 'running', 'winner', '',
           'created_at', ARGV[2], 'updated_at', ARGV[2], 'allocation', ARGV[3],
           'caring', ARGV[4])
if ARGV[5] == 'scheduled' then redis.call('HSET', KEYS[1], 'starts_at', ARGV[6]) end
if ARGV[7] and ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'reward', ARGV[7]) end
if ARGV[8] and ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'denominator', ARGV[8]) end
return {1, ARGV[2]}
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] new status, ARGV[2] winner ('' for none), ARGV[3] now (s), ARGV[4] audit entry JSON,
#: ARGV[5] expected current status ('' = any), ARGV[6] audit entries kept
#:
#: Changes status and winner and appends the audit entry, together.
#: Returns 1 if changed, 0 if the experiment is missing, archived (it must be
#: unarchived first) or not in the expected status.
SET_STATUS = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
if ARGV[5] ~= '' and current ~= ARGV[5] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'archived_at') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'winner', ARGV[2], 'updated_at', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] allocation mode, ARGV[2] threshold of caring, ARGV[3] now (s),
#: ARGV[4] audit entry JSON, ARGV[5] audit entries kept,
#: ARGV[6] (optional) reward, ARGV[7] (optional) denominator ("" or absent: unchanged)
#:
#: Changes the allocation mode, the threshold of caring and (when given) the
#: reward and the denominator, and appends the audit entry, together; the
#: status and counts are untouched.
#: Returns 1 if changed, 0 if the experiment is missing.
SET_SETTINGS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'allocation', ARGV[1], 'caring', ARGV[2], 'updated_at', ARGV[3])
if ARGV[6] and ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'reward', ARGV[6]) end
if ARGV[7] and ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'denominator', ARGV[7]) end
redis.call('LPUSH', KEYS[2], ARGV[4])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] now (s), or "" to start only a scheduled experiment whose start
#: time has come by Redis's clock (``TIME``), ARGV[2] audit entry JSON,
#: ARGV[3] audit entries kept
#:
#: Puts a draft or scheduled experiment live: running, at the top of the front
#: page (its rank is the moment it went live: now, or its start time), and
#: appends the audit entry.
#: With ARGV[1] = "" it is the scheduled start: it applies only to a
#: scheduled experiment whose ``starts_at`` is not after ``TIME``, so every
#: worker and every counting script agree on when the story went live, and
#: of several workers asking at once exactly one starts it.
#: Returns 1 if started, 0 otherwise (missing, not a draft or scheduled, or
#: not due yet).
START = """
local current = redis.call('HGET', KEYS[1], 'status')
if current ~= 'draft' and current ~= 'scheduled' then return 0 end
local now, rank = ARGV[1], ARGV[1]
if now == '' then
  if current ~= 'scheduled' then return 0 end
  local time = redis.call('TIME')
  local seconds = time[1] + time[2] / 1000000
  rank = redis.call('HGET', KEYS[1], 'starts_at') or ''
  if rank == '' or tonumber(rank) > seconds then return 0 end
  now = string.format('%.6f', seconds)
end
redis.call('HSET', KEYS[1], 'status', 'running', 'winner', '', 'updated_at', now, 'rank', rank)
redis.call('HDEL', KEYS[1], 'starts_at')
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] start time (s), or "" to unschedule, ARGV[2] now (s),
#: ARGV[3] audit entry JSON, ARGV[4] audit entries kept
#:
#: Schedules a draft (or moves a scheduled experiment's start time), or, with
#: ARGV[1] = "", makes a scheduled experiment a draft again; appends the
#: audit entry.  Returns 1 if changed, 0 if the experiment is missing or in
#: another status.
SCHEDULE = """
local current = redis.call('HGET', KEYS[1], 'status')
if ARGV[1] == '' then
  if current ~= 'scheduled' then return 0 end
  redis.call('HSET', KEYS[1], 'status', 'draft', 'updated_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'starts_at')
else
  if current ~= 'draft' and current ~= 'scheduled' then return 0 end
  redis.call('HSET', KEYS[1], 'status', 'scheduled', 'starts_at', ARGV[1],
             'updated_at', ARGV[2])
end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] counts hash, KEYS[3] audit list
#: ARGV[1] the new definition JSON, ARGV[2] the definition JSON the editor
#: changed, ARGV[3] now (s), ARGV[4] how long counting waits (s),
#: ARGV[5] audit entry JSON, ARGV[6] audit entries kept
#:
#: Replaces the story's text (title, headlines, body) while nobody has been
#: counted: refused once the counts hash exists (an impression was counted;
#: the counts would mix two texts), once a winner is chosen, when archived,
#: and when the stored text is no longer the one the editor changed (another
#: edit came first).  Counting of the experiment then waits ARGV[4] seconds
#: (``quiet_until``, in Redis's clock, which :data:`IMPRESSION` checks): a
#: worker's copy of the old text is refreshed within that time, so no
#: impression of the old text is counted for the new one.
#: Returns 1 if changed; otherwise why not: "missing", "archived", "decided",
#: "seen" or "changed".
EDIT = """
local meta = redis.call('HMGET', KEYS[1], 'status', 'definition', 'archived_at')
if not meta[1] then return 'missing' end
if meta[3] then return 'archived' end
if meta[1] == 'decided' then return 'decided' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'seen' end
if meta[2] ~= ARGV[2] then return 'changed' end
local time = redis.call('TIME')
local quiet = (time[1] + tonumber(ARGV[4])) * 1000000 + time[2]
redis.call('HSET', KEYS[1], 'definition', ARGV[1], 'updated_at', ARGV[3],
           'quiet_until', string.format('%d', quiet))
redis.call('LPUSH', KEYS[3], ARGV[5])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] "1" to archive, "" to unarchive, ARGV[2] now (s),
#: ARGV[3] audit entry JSON, ARGV[4] audit entries kept
#:
#: Archives a decided or paused experiment (``archived_at``: off the front
#: page, its story still served at its address) or unarchives it; its status
#: is untouched.  Returns 1 if changed, 0 if missing, already so, or (to
#: archive) neither decided nor paused.
ARCHIVE = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return 0 end
local archived = redis.call('HEXISTS', KEYS[1], 'archived_at')
if ARGV[1] == '1' then
  if archived == 1 or (current ~= 'decided' and current ~= 'paused') then return 0 end
  redis.call('HSET', KEYS[1], 'archived_at', ARGV[2], 'updated_at', ARGV[2])
else
  if archived == 0 then return 0 end
  redis.call('HDEL', KEYS[1], 'archived_at')
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
return 1
"""

#: KEYS[1] meta hash, KEYS[2] audit list
#: ARGV[1] rank (higher is nearer the top of the front page), ARGV[2] now (s),
#: ARGV[3] audit entry JSON ("" for none), ARGV[4] audit entries kept
#:
#: Moves the story on the front page; its status is untouched.  The order is
#: one number per experiment, in its own meta hash (so on a Redis Cluster
#: the move and its audit entry are one step on one slot).  Returns 1 if
#: changed, 0 if the experiment is missing.
SET_RANK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'rank', ARGV[1])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
  redis.call('LPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
end
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
    marker scripts) how markers expire.  A budget of 0 is no budget: the caller
    then sends no budget field."""
    original = script
    values = {
        "{minute_ttl}": minute_ttl,
        "{hour_ttl}": hour_ttl,
        "{budget_ttl}": budget_ttl,
        "{impression_budget}": impression_budget,
        "{click_budget}": click_budget,
    }
    for name, value in values.items():
        script = script.replace(name, str(int(value)))
    expiry = _FIELD_EXPIRY if field_ttl else _HASH_EXPIRY
    for name, places in _MARKERS.items():
        if original in places:
            key, field, ttl = places[original]
            script = script.replace("{" + name + "}", expiry.format(key=key, field=field, ttl=ttl))
    return script
