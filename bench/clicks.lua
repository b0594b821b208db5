-- wrk script: each request clicks through a different visitor's link.
-- The harness writes one "path<TAB>cookie" line per visitor into the file
-- named by the environment variable CLICKS_FILE.  With CLICKS_PATH set, every
-- request goes to that path instead, with the same cookies: the floor's run,
-- so that wrk does the same work for both sides.
local lines = {}
local index = 0
local step = 1

local function load()
  for line in io.lines(os.getenv("CLICKS_FILE")) do
    local path, cookie = line:match("^(%S+)\t(%S+)$")
    lines[#lines + 1] = {path, cookie}
  end
end

local threads = 0

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  load()
  index = id
  step = tonumber(os.getenv("WRK_THREADS") or "1")
end

local fixed_path = os.getenv("CLICKS_PATH")

function request()
  local entry = lines[(index % #lines) + 1]
  index = index + step
  return wrk.format("GET", fixed_path or entry[1], {["Cookie"] = "abtest_visitor=" .. entry[2]})
end
