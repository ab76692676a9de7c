dofile("bench/wrk/auth.lua")  -- with_auth(headers): the bearer token of AUTH=1 runs
-- NDJSON bodies of BATCH events (default 500), unique event_ids, CAMERAS cameras.
-- IDENTITY=seq: the same events numbered per camera ("seq") instead of an event_id (issue #12): camera
-- counter % CAMERAS gets the next number of its own, from a per-run base above every earlier run's numbers.
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
  sequenced = os.getenv("IDENTITY") == "seq"
  -- Numbers per camera grow by well under 100,000 a second, so a run started later starts above this one.
  seqbase = os.time() * 100000
end
request = function()
  local stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 30)
  local lines = {}
  for i = 1, batch do
    counter = counter + 1
    if sequenced then
      lines[i] = string.format(
        '{"kvfv_id":"KV%05d","timestamp":"%s","vehicle_speed":%.1f,"plate_number":"A%06dBC77","seq":%d,"lane":%d}',
        counter % cameras, stamp, 40 + (counter * 7 % 900) / 10, counter % 1000000,
        seqbase + math.floor(counter / cameras), counter % 3 + 1)
    else
      lines[i] = string.format(
        '{"kvfv_id":"KV%05d","timestamp":"%s","vehicle_speed":%.1f,"plate_number":"A%06dBC77","event_id":"%s-%d-%d","lane":%d}',
        counter % cameras, stamp, 40 + (counter * 7 % 900) / 10, counter % 1000000, nonce, tid, counter, counter % 3 + 1)
    end
  end
  return wrk.format("POST", "/events", with_auth({["Content-Type"] = "application/x-ndjson"}), table.concat(lines, "\n"))
end

