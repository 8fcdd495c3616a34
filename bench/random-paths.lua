-- wrk script: each request GETs a random line of the file named by the PATHS environment variable.
local paths = {}

function init(args)
  local file = assert(io.open(os.getenv("PATHS"), "r"))
  for line in file:lines() do
    paths[#paths + 1] = line
  end
  file:close()
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
end

-- With DELAY_MS set, each connection pauses that long before each request, which paces the load
-- (64 connections pausing 15 ms give about 4,000 requests/s) so latency is measured at a given rate.
local pause = tonumber(os.getenv("DELAY_MS") or "")
if pause then
  function delay()
    return pause
  end
end

-- With TOKEN set, every request carries it as a bearer token (the server needs one since the
-- access issue; peers and older builds run without).
local token = os.getenv("TOKEN")
local headers = { ["Accept"] = "application/fhir+json" }
if token and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("non-2xx/3xx: %d, socket errors: %d\n", summary.errors.status, errors.connect + errors.read + errors.write + errors.timeout))
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
