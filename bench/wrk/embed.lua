-- POST /embed with never-seen-before sentences (every input a cache miss).
-- Env: SENTENCES (file, one per line), BATCH (inputs per request, default 1),
-- MODEL (the `model` each request names; none by default).
-- Prints one JSON line starting with RESULT at the end.
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  sentences = {}
  for line in io.lines(os.getenv("SENTENCES") or "bench/sentences.txt") do
    table.insert(sentences, line)
  end
  batch = tonumber(os.getenv("BATCH") or "1")
  model = os.getenv("MODEL") or ""
  if model ~= "" then
    model = ',"model":"' .. model .. '"'
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  counter = 0
  nonce = (os.getenv("NONCE") or tostring(os.time())) .. "t" .. tid
end

function request()
  local list = {}
  for j = 1, batch do
    counter = counter + 1
    list[j] = sentences[(counter % #sentences) + 1] .. " req " .. nonce .. "x" .. counter
  end
  return wrk.format(nil, "/embed", nil, '{"inputs":["' .. table.concat(list, '","') .. '"]' .. model .. '}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
