# Contender Varnish (the cache scenarios only): in front of perf/origin/nginx.conf, malloc
# storage of 256 MiB, default VCL rules (it caches what the origin marks fresh). Started by
# perf/run.sh from a copy in perf/work/varnish-main/ with @PLACEHOLDERS@ filled in:
#   taskset -c 0 varnishd -F -n DIR -f varnish.vcl -a 127.0.0.1:PORT -a 127.0.0.1:PORT+30 \
#       -s malloc,256m
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN_PORT@";
}
