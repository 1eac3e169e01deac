-- wrk through a forward proxy: every request names the origin in absolute form.
-- FORWARD_TARGET is the origin URL, e.g. http://127.0.0.1:18600/
wrk.path = os.getenv("FORWARD_TARGET")
wrk.headers["Host"] = wrk.path:match("^http://([^/]+)")
