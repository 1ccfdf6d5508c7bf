-- wrk script for the benchmark (bench/wrk.py sets the environment).
--   BENCH_METHOD  GET or POST (default GET)
--   BENCH_PATHS   request paths separated by "," (rotated per request)
--   BENCH_BODY    request body (POST)
--   BENCH_HEADERS headers "Name: value" separated by "|"
-- Requests are formatted once in init(); done() prints one line
-- "BENCHJSON {...}" with the totals and latency percentiles (microseconds).

local reqs = {}
local n = 0
local i = 0

function init(args)
   local method = os.getenv("BENCH_METHOD") or "GET"
   local body = os.getenv("BENCH_BODY")
   if body == "" then body = nil end
   local headers = {}
   for h in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
      local k, v = string.match(h, "^%s*([^:]+):%s*(.*)$")
      if k then headers[k] = v end
   end
   for p in string.gmatch(os.getenv("BENCH_PATHS") or "/", "[^,]+") do
      n = n + 1
      reqs[n] = wrk.format(method, p, headers, body)
   end
   i = math.random(n) - 1
end

function request()
   i = (i % n) + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
      '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
