-- serve.lua - wrk script of `make bench-serve`: POST the JSON body given
-- after `--` to every request, and print one line of JSON at the end
-- (latency in microseconds; errors.status counts answers other than 2xx/3xx).
-- usage: wrk -c50 -d3s -s bench/serve.lua http://127.0.0.1:PORT/v1/NAME/FUNC -- '[2,3]'
function init(args)
   wrk.method = "POST"
   wrk.body = args[1] or "[]"
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
      '"non_2xx": %d, "socket_errors": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      e.status, e.connect + e.read + e.write + e.timeout))
end
