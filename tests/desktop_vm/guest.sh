#!/bin/bash
# The guest half of tests/desktop_vm.rs, run by tests/vm/run-guest.sh as the
# unprivileged user `tester` in the Debian 12 guest, whose kernel (6.1) has
# Landlock without abstract-socket scoping (ABI 6 came with Linux 6.12).
#
# There, a sandbox that shares the host's network namespace would reach
# every abstract unix socket of the host (the X servers' @/tmp/.X11-unix/XN
# among them), so hutch refuses a display grant with it, naming the kernel
# feature (and a filtered D-Bus bus, which the app could reach around the
# proxy); the same display grant in the sandbox's own network namespace
# runs, and so does a sandbox with the host's network namespace and no
# display or bus.
# Every check prints `PASS name: ...` or `FAIL name: ...` with hutch's
# output; the last line is `DONE failures=N`, and the exit status is N.
set -u
here=$(dirname "$(readlink -f "$0")")
cd "$here"
fails=0
T=$(mktemp -d)
# Executing from the 9p share is slow under TCG: run a copy.
cp "$here/hutch" "$T/hutch"
H=$T/hutch

pass() { echo "PASS $1: $2"; }
fail() {
    echo "FAIL $1: $2"
    sed 's/^/    | /' "$T/out" 2>/dev/null
    fails=$((fails + 1))
}
# run PROFILE: hutch run with that profile and DISPLAY=:0; sets rc, out.
run() {
    DISPLAY=:0 timeout 90 "$H" run --profile "$here/$1" -- true >"$T/out" 2>&1
    rc=$?
    out=$(cat "$T/out")
}

echo "kernel $(uname -r)"
# An X11 socket at :0 (a listener that accepts; no X server is needed to
# plan or to start the sandbox).
mkdir -p /tmp/.X11-unix
systemd-socket-activate -l /tmp/.X11-unix/X0 true >/dev/null 2>&1 &
listener=$!
for _ in $(seq 50); do [ -S /tmp/.X11-unix/X0 ] && break; sleep 0.1; done

run x11-host-net.toml
if [ "$rc" = 125 ] && grep -q "Landlock ABI 6, Linux 6.12+" <<<"$out" \
    && [ "$(grep -c '^error' <<<"$out")" = 1 ]; then
    pass refused "x11 host with the host's network namespace: $(head -1 <<<"$out")"
else
    fail refused "expected one error naming Landlock ABI 6 (exit $rc)"
fi

run wayland-net.toml
if [ "$rc" = 125 ] && grep -q "Landlock ABI 6, Linux 6.12+" <<<"$out"; then
    pass refused-wayland "wayland with the host's network namespace is refused before its socket is looked for"
else
    fail refused-wayland "expected the refusal (exit $rc)"
fi

# A filtered bus with the host's network namespace: an abstract-socket bus
# (and any other abstract socket) would be reachable around the proxy.
DBUS_SESSION_BUS_ADDRESS=unix:path=/tmp/.X11-unix/X0 run dbus-net.toml
if [ "$rc" = 125 ] && grep -q "Landlock ABI 6, Linux 6.12+" <<<"$out" \
    && grep -q "around the proxy" <<<"$out" && [ "$(grep -c '^error' <<<"$out")" = 1 ]; then
    pass refused-dbus "a filtered bus with the host's network namespace: $(head -1 <<<"$out")"
else
    fail refused-dbus "expected one error naming Landlock ABI 6 and the proxy (exit $rc)"
fi

run x11-host.toml
if [ "$rc" = 0 ]; then
    pass own-netns "x11 host in the sandbox's own network namespace runs"
else
    fail own-netns "exit $rc"
fi

run net.toml
if [ "$rc" = 0 ]; then
    pass no-display "the host's network namespace without a display runs"
else
    fail no-display "exit $rc"
fi

kill "$listener" 2>/dev/null
echo "DONE failures=$fails"
exit "$fails"
