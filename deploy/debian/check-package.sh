#!/usr/bin/env bash
# Builds ringway's Debian package from an already-built binary, installs it with dpkg -i,
# checks the packaged config with `ringway check`, starts the binary as the `ringway`
# user on that config, serves one request through it, then purges the package and checks
# the user is gone. .ci/run runs it after the tests, on the debug binary they built (the
# package is the same but for the binary's speed).
#
#   deploy/debian/check-package.sh            # packages target/debug/ringway
#   deploy/debian/check-package.sh release    # packages target/release/ringway
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${1:-dev}
say() { echo "check-package: $*"; }

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --version '^3'
dpkg -s ringway >/dev/null 2>&1 && { say "a ringway package is installed already; not touching it"; exit 1; }

deb=$(cargo deb --no-build --profile "$PROFILE" --output target/debian/ringway.deb 2>&1 | tail -n 1)
[[ -f $deb ]] || { say "cargo deb made no package: $deb"; exit 1; }
say "built $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --contents "$deb" | awk '{print $NF}' | grep -q '^./lib/systemd/system/ringway.service$'

cleanup() {
    [[ -n ${pid:-} ]] && kill -TERM "$pid" 2>/dev/null || true
    dpkg --purge ringway >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "$deb"
getent passwd ringway >/dev/null || { say "postinst made no ringway user"; exit 1; }
/usr/bin/ringway check /etc/ringway/ringway.toml
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify /lib/systemd/system/ringway.service
fi

# The packaged (embedded default) config: 8080 answers /ringway itself.
# setpriv execs the proxy itself as ringway (no session around it), so $pid is the proxy.
setpriv --reuid=ringway --regid=ringway --init-groups \
    /usr/bin/ringway --config /etc/ringway/ringway.toml &
pid=$!
for _ in $(seq 100); do
    answer=$(curl -s --max-time 1 http://127.0.0.1:8080/ringway || true)
    [[ $answer == "ringway is running" ]] && break
    sleep 0.1
done
[[ $answer == "ringway is running" ]] || { say "no answer from the packaged proxy"; exit 1; }
owner=$(stat -c %U "/proc/$pid")
[[ $owner == ringway ]] || { say "the proxy runs as $owner, not ringway"; exit 1; }
kill -TERM "$pid"
wait "$pid" || true
pid=
dpkg --purge ringway
! getent passwd ringway >/dev/null || { say "purge left the ringway user"; exit 1; }
[[ ! -e /usr/bin/ringway ]] || { say "purge left /usr/bin/ringway"; exit 1; }
say "ok: installed, checked, served as user ringway, purged"
