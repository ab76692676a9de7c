dofile("bench/wrk/auth.lua")  -- with_auth(headers): the bearer token of AUTH=1 runs
-- One camera-day at 5m: a random camera among CAMERAS and a random full day among the QUERY_DAYS stored.
function init(args)
  cameras = tonumber(os.getenv("CAMERAS") or "1000")
  days = math.max(2, tonumber(os.getenv("QUERY_DAYS") or "29"))
  math.randomseed(os.time())
end
request = function()
  local today = math.floor(os.time() / 86400)
  local day = today - math.random(1, days - 1)
  local path = string.format("/kvfv/KV%05d/avg-speed?from=%s&to=%s&interval=5m", math.random(1, cameras),
    os.date("!%Y-%m-%dT00:00:00Z", day * 86400), os.date("!%Y-%m-%dT00:00:00Z", (day + 1) * 86400))
  return wrk.format("GET", path, with_auth({}))
end

