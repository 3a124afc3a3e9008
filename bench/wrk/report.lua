-- wrk script: prints one machine-readable line at the end of a run, and paces
-- the requests when BENCH_INTERVAL_MS is set (the mean gap between two
-- requests on one connection; gaps drawn from an exponential distribution so
-- that the connections do not fire in lock step: a Poisson arrival process).

local interval = tonumber(os.getenv("BENCH_INTERVAL_MS") or "")

if interval then
   math.randomseed(os.time() + math.floor(os.clock() * 1e6))
   delay = function()
      return -interval * math.log(1 - math.random())
   end
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d"
         .. " p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
