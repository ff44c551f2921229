-- Make wrk end with one machine-readable line (times in microseconds).
-- The session cookie comes with `-H "Cookie: ..."` on wrk's command line.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %.0f, "duration_us": %.0f, "p50_us": %.1f, "p99_us": %.1f, "max_us": %.1f, '
      .. '"connect": %.0f, "read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
