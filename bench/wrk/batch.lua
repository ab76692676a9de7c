dofile("bench/wrk/auth.lua")  -- with_auth(headers): the bearer token of AUTH=1 runs
-- NDJSON bodies of BATCH events (default 500), unique event_ids, CAMERAS cameras.
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  -- A per-run nonce keeps event_ids unique across runs (otherwise later runs measure duplicates).
  math.randomseed(os.time() + tid * 7919)
  nonce = string.format("%x%x", os.time(), math.random(1, 1000000000))
  cameras = tonumber(os.getenv("CAMERAS") or "1000")
  batch = tonumber(os.getenv("BATCH") or "500")
end
request = function()
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 30)
  local lines = {}
  for i = 1, batch do
    counter = counter + 1
    lines[i] = string.format(
      '{"kvfv_id":"KV%05d","timestamp":"%s","vehicle_speed":%.1f,"plate_number":"A%06dBC77","event_id":"%s-%d-%d","lane":%d}',
      counter % cameras, stamp, 40 + (counter * 7 % 900) / 10, counter % 1000000, nonce, tid, counter, counter % 3 + 1)
  end
  return wrk.format("POST", "/events", with_auth({["Content-Type"] = "application/x-ndjson"}), table.concat(lines, "\n"))
end

