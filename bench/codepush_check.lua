-- wrk script: CodePush update checks from random devices of a 1,000,000-device fleet.
-- The deployment key comes from the environment (bench/server_check.py sets it).
math.randomseed(42)
local key = os.getenv("HOTPATCH_BENCH_DEPLOYMENT_KEY")
request = function()
  local device = math.random(0, 999999)
  local path = string.format(
    "/v0.1/public/codepush/update_check?deployment_key=%s&app_version=1.0.0&client_unique_id=device-%d",
    key, device)
  return wrk.format("GET", path)
end
