-- wrk script for bench/run.sh; one file for every server, parametrised by the arguments after `--`:
--
--   wrk ... -s bench/scenario.lua URL -- verify  PATH ACCESS_TOKEN     POST {"token": ACCESS_TOKEN}
--   wrk ... -s bench/scenario.lua URL -- bearer  PATH ACCESS_TOKEN     GET with Authorization: Bearer
--   wrk ... -s bench/scenario.lua URL -- get     PATH                  GET, nothing else
--   wrk ... -s bench/scenario.lua URL -- refresh PATH TOKENS_FILE      POST {"refresh": ...}, one
--                                                                      never-used token a request
--   wrk ... -s bench/scenario.lua URL -- login   PATH USERNAME PASSWORD
--
-- PATH is the server's route (handstamp's /api/token/verify/, the naive server's /verify, ...): run.sh
-- holds the table of which server answers a scenario on which path.
--
-- Every response is checked: anything but 200 is counted, by status, and the first such body is kept.
-- done() prints one machine-readable line for bench/run.sh:
--
--   BENCH requests=N duration_s=S rps=R p50_ms=A p99_ms=B non200=C socket_errors=E timeouts=T
--         exhausted=X statuses=401:3 first_bad=...
--
-- socket_errors counts connect, read and write errors and timeouts; timeouts is the last of those alone.

local json_headers = { ["Content-Type"] = "application/json" }

-- Thread state (init, request, response run in each wrk thread's own Lua state).
non200 = 0
statuses = {}
first_bad = ""
exhausted = 0

local fixed_request      -- prebuilt request for the modes that send the same bytes every time
local path               -- refresh: the route
local tokens, next_token -- refresh: the tokens, and the index of the next unused one

local function json_string(s)
  -- The values used here (JWTs, plain user names and passwords) need no escaping beyond these.
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function init(args)
  local mode = args[1]
  path = args[2]
  assert(path and path:sub(1, 1) == "/", "usage: -- MODE PATH ARGS...")
  if mode == "verify" then
    fixed_request = wrk.format("POST", path, json_headers, '{"token":' .. json_string(args[3]) .. '}')
  elseif mode == "bearer" then
    fixed_request = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. args[3] })
  elseif mode == "get" then
    fixed_request = wrk.format("GET", path)
  elseif mode == "login" then
    fixed_request = wrk.format("POST", path, json_headers,
      '{"username":' .. json_string(args[3]) .. ',"password":' .. json_string(args[4]) .. '}')
  elseif mode == "refresh" then
    tokens = {}
    for line in io.lines(args[3]) do
      if line ~= "" then tokens[#tokens + 1] = line end
    end
    assert(#tokens > 0, "no refresh tokens in " .. args[3])
    next_token = 1
  else
    error("unknown mode: " .. tostring(mode))
  end
end

function request()
  if fixed_request then
    return fixed_request
  end
  -- refresh: each request spends its own token. Running out wraps around, which makes the server
  -- answer 401 (blacklisted): the run then shows up as failed, and `exhausted` says why.
  if next_token > #tokens then
    next_token = 1
    exhausted = exhausted + 1
  end
  local token = tokens[next_token]
  next_token = next_token + 1
  return wrk.format("POST", path, json_headers, '{"refresh":"' .. token .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then
    non200 = non200 + 1
    statuses[status] = (statuses[status] or 0) + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. tostring(body)
    end
  end
end

-- Main state (setup and done run in the controlling Lua state): collect the threads' counters.
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local bad, runs_out, by_status, first = 0, 0, {}, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("non200")
    runs_out = runs_out + t:get("exhausted")
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
  -- first_bad goes last: it is free text (one line, cut short).
  io.write(string.format(
    "BENCH requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f non200=%d socket_errors=%d timeouts=%d exhausted=%d statuses=%s first_bad=%s\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    bad, e.connect + e.read + e.write + e.timeout, e.timeout, runs_out,
    #parts > 0 and table.concat(parts, ",") or "-",
    first:gsub("[\r\n]", " "):sub(1, 200)))
end
