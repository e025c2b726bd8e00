-- The cheapest requests that go through every protection layer: GET /info, or with
-- PATH_UNDER_TEST=/embed a POST the handler refuses at validation (422) before the model.
-- Env: KEY (sent as a bearer token when set), PATH_UNDER_TEST (/info or /embed).
-- Used to measure what authentication and rate limiting cost per request.
function init(args)
  local path = os.getenv("PATH_UNDER_TEST") or "/info"
  local key = os.getenv("KEY")
  if key and #key > 0 then
    wrk.headers["Authorization"] = "Bearer " .. key
  end
  if path == "/embed" then
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = '{"inputs":[]}'
  end
  wrk.path = path
end

function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests":%d,"duration_us":%d,"non2xx_or_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status + summary.errors.connect + summary.errors.read,
    latency:percentile(50), latency:percentile(99)))
end
