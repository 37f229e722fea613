-- wrk script of bench/compare: POSTs one TAXII 1.1 message, checks every
-- answer and stops after a number of answers as well as after wrk's -d.
-- Environment:
--   COMPARE_BODY       file holding the request body
--   COMPARE_AUTH       the Authorization header value ("Basic ..." or "Bearer ...")
--   COMPARE_EXPECT     text a good answer holds exactly COMPARE_TIMES times
--   COMPARE_TIMES      (default 1)
--   COMPARE_PER_THREAD answers after which each wrk thread stops

local file = assert(io.open(os.getenv("COMPARE_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/xml"
wrk.headers["Accept"] = "application/xml"
wrk.headers["X-TAXII-Content-Type"] = "urn:taxii.mitre.org:message:xml:1.1"
wrk.headers["X-TAXII-Accept"] = "urn:taxii.mitre.org:message:xml:1.1"
wrk.headers["X-TAXII-Services"] = "urn:taxii.mitre.org:services:1.1"
wrk.headers["X-TAXII-Protocol"] = "urn:taxii.mitre.org:protocol:http:1.0"
wrk.headers["Authorization"] = os.getenv("COMPARE_AUTH")

-- wrk reports a run as lasting its -d however early every thread stopped:
-- a run that reaches its bound is timed here instead, on the monotonic clock.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } compare_timespec;
int clock_gettime(int clock, compare_timespec *now);
]])
local CLOCK_MONOTONIC = 1
local function now()
  local time = ffi.new("compare_timespec")
  ffi.C.clock_gettime(CLOCK_MONOTONIC, time)
  return tonumber(time.tv_sec) + tonumber(time.tv_nsec) / 1e9
end

local expect = os.getenv("COMPARE_EXPECT")
local times = tonumber(os.getenv("COMPARE_TIMES") or "1")
local per_thread = tonumber(os.getenv("COMPARE_PER_THREAD"))

local function occurrences(text)
  local count, from = 0, 1
  while true do
    local at = string.find(text, expect, from, true)
    if not at then
      return count
    end
    count, from = count + 1, at + #expect
  end
end

-- Each wrk thread has a Lua state of its own: counted there, summed in done().
local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  started = now()
end

answers, good = 0, 0
function response(status, headers, body)
  answers = answers + 1
  if status == 200 and occurrences(body) == times then
    good = good + 1
  end
  if answers >= per_thread and not stopped then
    stopped = now()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total, first, last, bounded = 0, math.huge, 0, true
  for _, thread in ipairs(threads) do
    total = total + thread:get("good")
    first = math.min(first, thread:get("started"))
    local stop = thread:get("stopped")
    if stop then
      last = math.max(last, stop)
    else
      bounded = false
    end
  end
  local seconds = bounded and last - first or summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    '{"answers": %d, "good": %d, "seconds": %.6f, "socket_errors": %d, "latency_p99_ms": %.3f}\n',
    summary.requests, total, seconds,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(99) / 1000))
end
