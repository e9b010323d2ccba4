-- wrk script for benchmarks/bench_webhooks.py: cycles through precomputed, signed Twilio form
-- posts (one per line: path TAB X-Twilio-Signature TAB urlencoded body), each distinct so the
-- webhooks' deduplication never short-circuits, and prints one JSON line at the end.
local file = os.getenv("BENCH_REQUESTS")
local requests = {}
local index = 0

function init(args)
  for line in io.lines(file) do
    local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
end

function request()
  index = index + 1
  if index > #requests then
    index = 1 -- the caller sized the file; it checks that no request was sent twice
  end
  return requests[index]
end

function done(summary, latency, _requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
