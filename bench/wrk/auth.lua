-- Shared by the wrk scripts (bench/run.sh runs wrk from the repository root). With AUTH=1 bench/run.sh the token
-- comes from the file SPEEDFLOW_BENCH_TOKEN_FILE names and goes out as a bearer token (never on wrk's command line).
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
