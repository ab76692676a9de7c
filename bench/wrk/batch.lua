-- NDJSON bodies of BATCH events (default 500), unique event_ids, CAMERAS cameras.
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  cameras = tonumber(os.getenv("CAMERAS") or "1000")
  batch = tonumber(os.getenv("BATCH") or "500")
end
request = function()
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 30)
  local lines = {}
  for i = 1, batch do
    counter = counter + 1
    lines[i] = string.format(
      '{"kvfv_id":"KV%05d","timestamp":"%s","vehicle_speed":%.1f,"plate_number":"A%06dBC77","event_id":"b%d-%d","lane":%d}',
      counter % cameras, stamp, 40 + (counter * 7 % 900) / 10, counter % 1000000, tid, counter, counter % 3 + 1)
  end
  return wrk.format("POST", "/events", {["Content-Type"] = "application/x-ndjson"}, table.concat(lines, "\n"))
end
