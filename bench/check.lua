-- wrk script: update checks from random devices of a 1,000,000-device fleet.
math.randomseed(42)
request = function()
  local device = math.random(0, 999999)
  local path = string.format(
    "/update/check?appId=com.bench.app&platform=android&channel=production&deviceId=device-%d&nativeVersion=1.0.0",
    device)
  return wrk.format("GET", path)
end
