-- wrk script for bench/quotes.py: POST booking bodies in rotation and report the results.
--
-- Environment (set by bench/quotes.py):
--   BENCH_BODIES   file with one JSON booking per line
--   BENCH_API_KEY  API key with scope quotes:write (the bare baseline ignores it)
--
-- done() prints one machine-readable line per figure, each starting with "BENCH ":
--   BENCH requests=N, duration_s=S, requests_per_s=R, p50_ms=X, p99_ms=Y,
--   non_2xx=N, socket_errors=N, and status_<code>=N for every non-2xx status seen.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

-- Per-thread state (each wrk thread runs its own Lua state).
local requests = {}
local next_request = 1
statuses = {} -- global, so that done() can read it with thread:get()

local function read_bodies(path)
  local bodies = {}
  for line in io.lines(path) do
    if line ~= "" then
      table.insert(bodies, line)
    end
  end
  return bodies
end

function init(args)
  local bodies_path = assert(os.getenv("BENCH_BODIES"), "BENCH_BODIES is not set")
  local api_key = assert(os.getenv("BENCH_API_KEY"), "BENCH_API_KEY is not set")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. api_key
  for _, body in ipairs(read_bodies(bodies_path)) do
    table.insert(requests, wrk.format(nil, nil, nil, body))
  end
  assert(#requests > 0, "no bodies in " .. bodies_path)
  -- Threads start at different places in the rotation.
  next_request = ((thread_index - 1) * 7) % #requests + 1
end

function request()
  local req = requests[next_request]
  next_request = next_request % #requests + 1
  return req
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, _)
  local non_2xx = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      non_2xx = non_2xx + count
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  local lines = {
    string.format("requests=%d", summary.requests),
    string.format("duration_s=%.3f", seconds),
    string.format("requests_per_s=%.1f", summary.requests / seconds),
    string.format("p50_ms=%.2f", latency:percentile(50) / 1000),
    string.format("p99_ms=%.2f", latency:percentile(99) / 1000),
    string.format("non_2xx=%d", non_2xx),
    string.format(
      "socket_errors=%d", errors.connect + errors.read + errors.write + errors.timeout
    ),
  }
  for status, count in pairs(by_status) do
    table.insert(lines, string.format("status_%d=%d", status, count))
  end
  for _, line in ipairs(lines) do
    io.write("BENCH ", line, "\n")
  end
end
