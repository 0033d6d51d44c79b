-- wrk script: each request reads a different one of the 1,000 benchmark devices.
local n = 0
request = function()
  n = (n + 1) % 1000
  return wrk.format("GET", string.format("/api/devices/bench-%04d", n))
end
