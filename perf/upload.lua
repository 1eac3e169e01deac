-- wrk script for upload_1m: every request is POST /upload with a 1 MiB body
-- (wrk adds Content-Length). The origin reads the whole body before it answers 200.
wrk.method = "POST"
wrk.path = "/upload"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
