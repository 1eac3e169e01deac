# Shared by the perf scripts that run contenders of their own (perf/forward.sh,
# perf/h2.sh): installing what is missing, the release binary, the global perf lock,
# and the processes they start (stopped on exit), with their CPU time. Source it after
# setting ROOT and defining log and die.

SUDO=
[[ $EUID -ne 0 ]] && SUDO=sudo

# Installs the Debian packages named, if any.
apt_install() { # package...
    (($#)) || return 0
    log "installing $* (apt)"
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

# Sets RINGWAY_BIN to a release binary, building one when none was given, and takes the
# lock that keeps two load benchmarks from running at once.
ringway_and_lock() {
    if [[ -z ${RINGWAY_BIN:-} ]]; then
        log "cargo build --release"
        cargo build --release --locked
        RINGWAY_BIN=$ROOT/target/release/ringway
    fi
    [[ -x $RINGWAY_BIN ]] || die "no ringway binary at $RINGWAY_BIN"
    exec 9>"${TMPDIR:-/tmp}/ringway-perf.lock"
    flock -n 9 || die "another perf run holds ${TMPDIR:-/tmp}/ringway-perf.lock"
}

STARTED=()
cleanup() {
    local rc=$? pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${STARTED[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    exit "$rc"
}
trap cleanup EXIT
start() { # name logfile command...
    local name=$1 logfile=$2
    shift 2
    "$@" >"$logfile" 2>&1 &
    STARTED+=("$!")
    eval "PID_$name=$!"
}
wait_port() { # port pid logfile
    local i
    for ((i = 0; i < 100; i++)); do
        timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { tail -n 20 "$3" >&2; die "process $2 exited"; }
        sleep 0.2
    done
    tail -n 20 "$3" >&2
    die "nothing listens on :$1"
}
cpu_ticks() { # pid: utime + stime
    local stat fields
    stat=$(cat "/proc/$1/stat") || return 1
    read -r -a fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}
