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

-- With AUTH=1 bench/run.sh: the token from SPEEDFLOW_BENCH_TOKEN_FILE as a bearer token (never on wrk's command line).
function with_auth(headers)
  if auth_header == nil then
    auth_header = false
    local file = os.getenv("SPEEDFLOW_BENCH_TOKEN_FILE")
    if file then
      local f = io.open(file, "r")
      auth_header = "Bearer " .. f:read("*l")
      f:close()
    end
  end
  if auth_header then headers["Authorization"] = auth_header end
  return headers
end
