#!/bin/bash
# The guest half of tests/cgroup_vm.rs, started by tests/vm/run-guest.sh
# --as-root in a Debian guest with systemd and a pure cgroup v2 hierarchy.
#
# As root it checks the root backends (the systemd system manager, cgroup v2
# written directly), then runs itself as user `tester` in a transient service
# of tester's systemd user manager (where a login session's programs run)
# for the unprivileged checks; then it installs the Delegate= drop-in that
# hutch's refusal of io_weight recommends and checks, as tester again, that
# io_weight is then applied. Every check prints one line, `PASS name: ...`
# or `FAIL name: ...` (with hutch's output after it); each part ends with
# `DONE role failures=N`. The exit status is the number of failures.
set -u
here=$(dirname "$(readlink -f "$0")")
cd "$here"
role=${1:-root}
fails=0
T=$(mktemp -d)
# Executing from the 9p share is slow (seconds per run under TCG): run a copy.
cp "$here/hutch" "$T/hutch"
H=$T/hutch

pass() { echo "PASS $1: $2"; }
fail() {
    echo "FAIL $1: $2"
    sed 's/^/    | /' "$T/$1.err" "$T/$1.out" 2>/dev/null
    fails=$((fails + 1))
}
# run NAME ARGS...: hutch ARGS with a time bound; sets rc, out, err, secs.
run() {
    local name=$1 t0
    shift
    t0=$(date +%s%N)
    timeout 90 "$H" "$@" >"$T/$name.out" 2>"$T/$name.err"
    rc=$?
    secs=$(( ($(date +%s%N) - t0) / 1000000 ))
    secs="$((secs / 1000)).$(printf %03d $((secs % 1000)))"
    out=$(cat "$T/$name.out")
    err=$(cat "$T/$name.err")
}
# The cgroup directory hutch -v says the sandbox runs in.
cg_dir() { grep '^hutch: limits ' <<<"$1" | sed 's/.*: //; s/^[^ ]* (//; s/)$//'; }
# gone DIR: waits up to 5 s for a cgroup directory to disappear.
gone() {
    for _ in $(seq 50); do
        [[ -e $1 ]] || return 0
        sleep 0.1
    done
    return 1
}

FORKS='my ($ok, $failed) = (0, 0);
for (1..100) { my $p = fork(); if (!defined $p) { $failed++ } elsif ($p == 0) { sleep 30; exit 0 } else { $ok++ } }
print "forked $ok failed $failed\n";'
BUSY='sub up { open(my $f, "<", "/proc/uptime") or die; (split " ", scalar <$f>)[0] }
my $t0 = up(); while (up() - $t0 < 4) { for (1..20000) {} }
my $wall = up() - $t0; my @t = times;
printf "cpu %.1f\n", 100 * ($t[0] + $t[1]) / $wall;'

# check_oom NAME VIA: the last run was the memory hog under oom.toml.
check_oom() {
    local dir
    dir=$(cg_dir "$err")
    if [[ $rc == 137 && $err == *"out of memory: the sandbox reached its memory limit of 50 MiB and the kernel's OOM killer killed the payload"* && $err == *"via $2"* ]]; then
        pass "$1" "exit 137 after ${secs}s via $2 in $dir"
    else
        fail "$1" "expected exit 137 and the OOM message via $2; got exit $rc"
    fi
    if [[ -n $dir ]] && gone "$dir"; then
        pass "$1-cleanup" "$dir removed after the sandbox ended"
    else
        fail "$1-cleanup" "cgroup '$dir' still exists"
    fi
}

# check_forks NAME VIA MAX: the last run was the fork loop under pids.toml.
check_forks() {
    local forked failed
    read -r forked failed < <(sed -n 's/^forked \([0-9]*\) failed \([0-9]*\)$/\1 \2/p' <<<"$out")
    if [[ $rc == 0 && -n $forked && $failed -gt 0 && $forked -le $3 && $err == *"reached its process limit (pids 20)"* && $err == *"via $2"* ]]; then
        pass "$1" "$forked forks succeeded and $failed failed under pids 20 via $2"
    else
        fail "$1" "expected fewer than $3 successful forks and a message; got exit $rc, '$out'"
    fi
}

root_checks() {
    run root-systemd-oom run -v -p oom.toml -- tail /dev/zero
    check_oom root-systemd-oom "systemd system manager"

    # Without the system bus: cgroup v2 written directly, from the top.
    export DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/bus
    run root-v2-oom run -v -p oom.toml -- tail /dev/zero
    check_oom root-v2-oom "cgroup v2 (as root)"
    run root-v2-pids run -v -p pids.toml -- perl -e "$FORKS"
    check_forks root-v2-pids "cgroup v2 (as root)" 18
    unset DBUS_SYSTEM_BUS_ADDRESS
}

user_checks() {
    run explain run --explain -p oom.toml -- true
    if [[ $rc == 0 && $out == *"backend  systemd user manager: transient scope app-hutch-oom-PID.scope"* ]]; then
        pass explain "--explain names the systemd user manager as the backend"
    else
        fail explain "got exit $rc"
    fi

    run doctor doctor
    if [[ $out == *"WARN cgroup limits    systemd user manager: limits except io_weight"* && $out == *"Delegate=cpu io memory pids"* ]]; then
        pass doctor "hutch doctor: the user manager applies all but io_weight, with the fix"
    else
        fail doctor "got exit $rc"
    fi

    run oom run -v -p oom.toml -- tail /dev/zero
    check_oom oom "systemd user manager"
    left=$(systemctl --user list-units --all --no-legend 'app-hutch-*' | wc -l)
    if [[ $left == 0 ]]; then
        pass units "no app-hutch-* unit left in the user manager"
    else
        fail units "$left app-hutch-* units left: $(systemctl --user list-units --all --no-legend 'app-hutch-*')"
    fi

    run pids run -v -p pids.toml -- perl -e "$FORKS"
    check_forks pids "systemd user manager" 18

    run cpu run -v -p cpu.toml -- perl -e "$BUSY"
    pct=$(sed -n 's/^cpu \([0-9.]*\)$/\1/p' <<<"$out")
    if [[ $rc == 0 && -n $pct ]] && (( ${pct%.*} >= 10 && ${pct%.*} < 45 )); then
        pass cpu "a busy loop got ${pct}% of one CPU under cpu = 0.25 (bound 10-45%)"
    else
        fail cpu "expected 10-45% of one CPU; got exit $rc, '${pct}'"
    fi

    run cgroupns run -p pids.toml -- cat /proc/self/cgroup
    if [[ $rc == 0 && $out == "0::/" ]]; then
        pass cgroupns "the sandbox's cgroup namespace is rooted at its scope (/proc/self/cgroup: $out)"
    else
        fail cgroupns "expected 0::/, got exit $rc, '$out'"
    fi

    run io run -p io.toml -- true
    if [[ $rc == 125 && $err == *'controller `io` is not delegated to user@1000.service (it gets: cpu memory pids)'* && $err == *"Delegate=cpu io memory pids"* ]]; then
        pass not-delegated "io_weight is refused, naming the controller and the Delegate= drop-in"
    else
        fail not-delegated "expected exit 125 and the delegation error; got exit $rc"
    fi

    run io-best run -v -p io-best-effort.toml -- true
    if [[ $rc == 0 && $err == *'not enforced: limit `io_weight`: controller `io` is not delegated'* && $err == *"limits pids 32 via systemd user manager"* ]]; then
        pass best-effort "io_weight reported as not enforced, pids 32 applied"
    else
        fail best-effort "expected a run with a warning; got exit $rc"
    fi

    # A delegated scope of our own, without the user bus: hutch writes
    # cgroup v2 itself. Processes move into a leaf first, as systemd's
    # delegation rules ask of a delegatee.
    local t0
    t0=$(date +%s%N)
    timeout 90 systemd-run --user --scope --quiet -p Delegate=yes -- bash -c '
        cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)
        mkdir "$cg/leaf" && echo $$ > "$cg/leaf/cgroup.procs" || exit 99
        DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent/bus exec "$0" run -v -p oom.toml -- tail /dev/zero
    ' "$H" >"$T/delegated.out" 2>"$T/delegated.err"
    rc=$?
    secs=$(( ($(date +%s%N) - t0) / 1000000 ))
    secs="$((secs / 1000)).$(printf %03d $((secs % 1000)))"
    out=$(cat "$T/delegated.out")
    err=$(cat "$T/delegated.err")
    check_oom delegated "delegated cgroup v2 subtree"
}

# After the drop-in the refusal recommends: io_weight now works.
user_io_checks() {
    run io-delegated run -v -p io.toml -- true
    if [[ $rc == 0 && $err == *"limits memory 100 MiB, io_weight 200 via systemd user manager"* ]]; then
        pass io-delegated "with Delegate=cpu io memory pids for user@.service, io_weight 200 is applied and verified"
    else
        fail io-delegated "expected a run with io_weight; got exit $rc"
    fi
}

# as_tester ROLE: runs this script as tester in a transient user service.
as_tester() {
    systemctl start user@1000.service
    for _ in $(seq 100); do
        [[ -S /run/user/1000/bus ]] && break
        sleep 0.1
    done
    runuser -u tester -- env XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus \
        systemd-run --user --wait --pipe --quiet --collect --unit="hutch-cgroup-$1" \
        -p OOMPolicy=continue --working-directory="$here" -- "$here/guest.sh" "$1" </dev/null ||
        fails=$((fails + 1))
}

case "$role" in
root)
    root_checks
    echo "DONE root failures=$fails"
    as_tester user
    mkdir -p /etc/systemd/system/user@.service.d
    printf '[Service]\nDelegate=cpu io memory pids\n' >/etc/systemd/system/user@.service.d/delegate.conf
    systemctl daemon-reload
    systemctl restart user@1000.service
    as_tester user-io
    exit "$fails"
    ;;
user)
    user_checks
    echo "DONE user failures=$fails"
    exit "$fails"
    ;;
user-io)
    user_io_checks
    echo "DONE user-io failures=$fails"
    exit "$fails"
    ;;
esac
