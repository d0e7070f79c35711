-- wrk script for bench/drift_watcher.py: request and response CloudEvents in turn, each with its own Ce-Id and
-- puid (the watcher drops repeated ids), bodies cycled from the files named by the two script arguments (one JSON
-- body per line). Prints the summary as one JSON line (WRK_JSON ...) from done(), latencies in microseconds.

local counter = 0
local thread_id = 0
local requests_bodies, responses_bodies = {}, {}

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

local function lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end

function init(args)
  requests_bodies, responses_bodies = lines(args[1]), lines(args[2])
  authorization = "Bearer " .. args[3]  -- the watcher's ingestion token (the floor ignores it)
  run = args[4]  -- this run's tag: ids and puids never repeat across runs
end

function request()
  counter = counter + 1
  local n = math.floor((counter - 1) / 2)
  local is_request = (counter % 2 == 1)
  local i = (n % #requests_bodies) + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = authorization,
    ["Ce-Id"] = string.format("%s-t%d-e%d", run, thread_id, counter),
    ["Ce-Requestid"] = string.format("%s-t%d-p%d", run, thread_id, n),
    ["Ce-Type"] = is_request and "io.seldon.serving.inference.request" or "io.seldon.serving.inference.response",
    ["Ce-Endpoint"] = "main",
    ["Ce-Inferenceservicename"] = "credit-risk",
    ["Ce-Namespace"] = "ctloop",
  }
  return wrk.format("POST", "/v1/events", headers, is_request and requests_bodies[i] or responses_bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": {"status": %d, "timeout": %d, "connect": %d}, ' ..
    '"latency_us": {"p50": %d, "p99": %d}}\n',
    summary.requests, summary.duration, e.status, e.timeout, e.connect,
    latency:percentile(50), latency:percentile(99)))
end
