-- wrk script for bench/gateway.sh: the same request every time, each answer's status checked.
--
--   wrk ... -s bench/gateway.lua URL -- EXPECT PATH [HEADER ...]
--
-- EXPECT is the status every answer must have (200, or 304 for the If-None-Match row); HEADER is
-- "Name: value" (an Authorization with a Bearer token, an If-None-Match with the server's ETag).
-- Any other status is counted, by status, and the first such body kept; done() prints the same
-- machine-readable line as bench/scenario.lua:
--
--   BENCH requests=N duration_s=S rps=R p50_ms=A p99_ms=B non200=C socket_errors=E timeouts=T
--         exhausted=0 statuses=404:3 first_bad=...
--
-- (non200 counts the answers that were not EXPECT.)

non200 = 0
statuses = {}
first_bad = ""
exhausted = 0

local fixed_request
local expect

function init(args)
  expect = tonumber(args[1])
  local path = args[2]
  assert(expect and path and path:sub(1, 1) == "/", "usage: -- EXPECT PATH [HEADER ...]")
  local headers = {}
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    assert(name, "a header is Name: value, not " .. args[i])
    headers[name] = value
  end
  fixed_request = wrk.format("GET", path, headers)
end

function request()
  return fixed_request
end

function response(status, headers, body)
  if status ~= expect then
    non200 = non200 + 1
    statuses[status] = (statuses[status] or 0) + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. tostring(body)
    end
  end
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local bad, by_status, first = 0, {}, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    for status, n in pairs(t:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + n
    end
    if first == "" then first = t:get("first_bad") end
  end
  local parts = {}
  for status, n in pairs(by_status) do parts[#parts + 1] = status .. ":" .. n end
  table.sort(parts)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non200=%d socket_errors=%d timeouts=%d exhausted=0 statuses=%s first_bad=%s\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    bad, e.connect + e.read + e.write + e.timeout, e.timeout,
    #parts > 0 and table.concat(parts, ",") or "-",
    first:gsub("[\r\n]", " "):sub(1, 200)))
end
