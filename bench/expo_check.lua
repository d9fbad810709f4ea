-- wrk script: Expo Updates manifest requests from random devices of a 1,000,000-device fleet,
-- each running the embedded update (so half are offered the release at a 50 % rollout).
math.randomseed(42)
local embedded = "00000000-0000-4000-8000-000000000001"
request = function()
  local device = math.random(0, 999999)
  return wrk.format("GET", "/expo/com.bench.app/manifest", {
    ["expo-protocol-version"] = "1",
    ["expo-platform"] = "android",
    ["expo-runtime-version"] = "1.0.0",
    ["eas-client-id"] = string.format("device-%d", device),
    ["expo-current-update-id"] = embedded,
    ["expo-embedded-update-id"] = embedded,
    ["accept"] = "multipart/mixed,application/expo+json,application/json",
  })
end
