-- wrk script: every request is POST /upload with a 16 KiB body (wrk adds Content-Length).
-- The perf origin reads the whole body before it answers 200 "ok" (see perf/origin/nginx.conf).
-- 16 KiB is under ringway's request_buffer_bytes default (64 KiB), so with request
-- buffering on, the proxy reads the whole body before it takes an upstream connection.
wrk.method = "POST"
wrk.path = "/upload"
wrk.body = string.rep("x", 16384)
wrk.headers["Content-Type"] = "application/octet-stream"
