#!/bin/bash
# Guest half of tests/vm/selftest.sh: run by run-guest.sh as user tester in
# the guest's systemd user session.  Checks, in one boot, what hutch's cgroup
# tests need, and prints one line per check:
#   PASS <name>: <measured numbers>   FAIL <name>: ...   SKIP <name>: <reason>
# and at the end "selftest: N passed, N failed, N skipped".  Exits 1 if any
# check failed.
#
# Called with a "_name" argument it is the body of a check running inside a
# transient scope (systemd-run re-runs this script there).
set -uo pipefail

cgdir() { printf '/sys/fs/cgroup%s\n' "$(sed -n 's/^0:://p' /proc/self/cgroup)"; }
kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; } # key value-file
now_us() { local t=${EPOCHREALTIME/[.,]/}; printf '%s\n' "$t"; }

# ---- bodies running inside a scope ------------------------------------------
case "${1:-}" in
_pids)
    cg=$(cgdir)
    # A bounded fork loop: 100 children that sleep; perl's fork() fails at
    # once with EAGAIN (bash would retry with back-off for seconds).
    CG=$cg perl -e '
        my ($ok, $fail, @kids) = (0, 0);
        for (1 .. 100) {
            my $p = fork();
            if (!defined $p) { $fail++ }
            elsif ($p == 0) { sleep 60; exit 0 }
            else { $ok++; push @kids, $p }
        }
        open(my $f, "<", "$ENV{CG}/pids.current") or die; my $cur = <$f>; chomp $cur;
        kill "KILL", @kids; waitpid($_, 0) for @kids;
        print "forked=$ok failed=$fail pids.current=$cur ";'
    echo "pids.max=$(<"$cg/pids.max") pids.events.max=$(kv max "$cg/pids.events")"
    exit 0
    ;;
_cpu)
    cg=$(cgdir)
    (while :; do :; done) &
    busy=$!
    sleep 0.5
    u0=$(kv usage_usec "$cg/cpu.stat") t0=$(now_us)
    sleep 3
    u1=$(kv usage_usec "$cg/cpu.stat") t1=$(now_us)
    kill "$busy"
    permille=$(((u1 - u0) * 1000 / (t1 - t0)))
    echo "cpu.max=$(tr ' ' / <"$cg/cpu.max") usage_pct=$((permille / 10)).$((permille % 10))" \
        "window_s=$(((t1 - t0) / 1000000)).$((((t1 - t0) % 1000000) / 100000))" \
        "nr_throttled=$(kv nr_throttled "$cg/cpu.stat") throttled_usec=$(kv throttled_usec "$cg/cpu.stat")"
    exit 0
    ;;
_*)
    echo "unknown body $1" >&2
    exit 2
    ;;
esac

# ---- the checks ----------------------------------------------------------------
self=$(readlink -f "$0")
npass=0 nfail=0 nskip=0
result() { # PASS|FAIL|SKIP name details...
    local r=$1 name=$2
    shift 2
    printf '%s %s: %s\n' "$r" "$name" "$*"
    case "$r" in PASS) npass=$((npass + 1)) ;; FAIL) nfail=$((nfail + 1)) ;; *) nskip=$((nskip + 1)) ;; esac
}
# field NAME "k=v k=v..." -> v
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }
scope() { timeout 120 systemd-run --user --scope --quiet "$@"; }

echo "selftest: guest $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MB" }' /proc/meminfo), systemd $(systemctl --version | awk 'NR == 1 { print $2 }'), user $(id -un) ($(id -u))"

# 1. pure cgroup v2
fstype=$(stat -f -c %T /sys/fs/cgroup)
v1=$(awk '$3 == "cgroup"' /proc/mounts | wc -l)
opts=$(awk '$2 == "/sys/fs/cgroup" { print $4 }' /proc/mounts)
if [[ $fstype == cgroup2fs && $v1 -eq 0 ]]; then
    result PASS cgroup2-only "/sys/fs/cgroup is $fstype ($opts), $v1 cgroup v1 mounts, root controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
else
    result FAIL cgroup2-only "/sys/fs/cgroup is $fstype, $v1 cgroup v1 mounts"
fi

# 2. running inside tester's systemd user session, with its bus
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
state=$(systemctl --user is-system-running 2>&1)
if [[ $own == /user.slice/user-1000.slice/user@1000.service/* && -S "${XDG_RUNTIME_DIR:-/nonexistent}/bus" &&
    ${DBUS_SESSION_BUS_ADDRESS:-} == "unix:path=$XDG_RUNTIME_DIR/bus" && $state =~ ^(running|degraded)$ ]]; then
    result PASS user-session "cgroup $own, DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS, user manager $state"
else
    result FAIL user-session "cgroup $own, XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-unset}, DBUS_SESSION_BUS_ADDRESS=${DBUS_SESSION_BUS_ADDRESS:-unset}, user manager: $state"
fi

# 3. controllers delegated to user@1000.service
ucg=/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service
ctrls=$(cat "$ucg/cgroup.controllers" 2>/dev/null)
missing=""
for c in memory pids cpu; do
    [[ " $ctrls " == *" $c "* ]] || missing+=" $c"
done
if [[ -z "$missing" ]]; then
    result PASS delegation "user@1000.service cgroup.controllers: $ctrls; subtree_control: $(cat "$ucg/cgroup.subtree_control")"
else
    result FAIL delegation "user@1000.service cgroup.controllers: '$ctrls', missing:$missing"
fi

# 4. a transient user scope can be created (needs the delegated subtree)
sc=$(scope -- cat /proc/self/cgroup 2>&1)
if [[ $sc == 0::/user.slice/user-1000.slice/user@1000.service/*.scope ]]; then
    result PASS user-scope "systemd-run --user --scope ran in ${sc#0::}"
else
    result FAIL user-scope "systemd-run --user --scope: $sc"
fi

# 5. MemoryMax=50M: a memory hog run as the scope's process is OOM-killed.
# The scope's cgroup is gone when it ends, so the kill is counted in its
# parent (app.slice): memory.events is hierarchical.  The kernel's OOM report
# names the memcg and its limit.
app=/sys/fs/cgroup$(dirname "$own")
b=$(kv oom_kill "$app/memory.events")
t=$(now_us)
# (braces: keeps bash's "Killed" job message out of the output)
{ scope --unit=hutch-selftest-oom -p MemoryMax=50M -- tail /dev/zero; orc=$?; } 2>/dev/null
secs=$((($(now_us) - t) / 100000))
a=$(kv oom_kill "$app/memory.events")
unit_result=$(systemctl --user show -p Result --value hutch-selftest-oom.scope 2>/dev/null)
kmsg=$(dmesg 2>/dev/null)
memcg=$(printf '%s\n' "$kmsg" | grep -o 'oom_memcg=[^,]*hutch-selftest-oom.scope' | tail -n1)
limit=$(printf '%s\n' "$kmsg" | grep -o 'memory: usage [0-9]*kB, limit [0-9]*kB' | tail -n1)
killed=$(printf '%s\n' "$kmsg" | grep -o 'Killed process [0-9]* (tail).*anon-rss:[0-9]*kB' | tail -n1 | grep -o 'anon-rss:[0-9]*kB')
info="exit=$orc, app.slice memory.events oom_kill ${b:-?}->${a:-?}, unit Result=${unit_result:-n/a}, kernel: '${limit:-no OOM report}' ${killed:-} ($((secs / 10)).$((secs % 10)) s)"
if [[ $orc -eq 137 && -n "$a" && -n "$b" && $a -gt $b && -n "$memcg" && $limit == *"limit 51200kB" ]]; then
    result PASS memory-oom "$info"
else
    result FAIL memory-oom "$info; oom_memcg: ${memcg:-none seen}"
fi
systemctl --user reset-failed hutch-selftest-oom.scope 2>/dev/null

# 6. TasksMax=20 stops a fork loop
t=$(now_us)
out=$(scope -p TasksMax=20 -- "$self" _pids 2>&1)
orc=$?
secs=$((($(now_us) - t) / 100000))
ok=$(field forked "$out") failed=$(field failed "$out") cur=$(field pids.current "$out")
pmax=$(field pids.max "$out") ev=$(field pids.events.max "$out")
info="pids.max=${pmax:-?} forked=${ok:-?}/100 failed=${failed:-?} pids.current=${cur:-?} pids.events max=${ev:-?} ($((secs / 10)).$((secs % 10)) s)"
if [[ $orc -eq 0 && $pmax == 20 && -n "$ok" && $ok -lt 20 && $failed -gt 0 && $cur -le 20 && $ev -gt 0 ]]; then
    result PASS pids-limit "$info"
else
    result FAIL pids-limit "$info; exit=$orc output: $out"
fi

# 7. CPUQuota=25% holds a busy loop near a quarter of one CPU.  TCG timing is
# noisy, so the bound is wide; the throttling counter must move.
out=$(scope -p CPUQuota=25% -- "$self" _cpu 2>&1)
orc=$?
cmax=$(field cpu.max "$out") pct=$(field usage_pct "$out") thr=$(field nr_throttled "$out")
info="cpu.max=${cmax:-?} busy loop used ${pct:-?}% of one CPU over $(field window_s "$out") s, nr_throttled=${thr:-?} throttled_usec=$(field throttled_usec "$out")"
if [[ $orc -eq 0 && $cmax == 25000/100000 && -n "$pct" && ${pct%.*} -ge 10 && ${pct%.*} -lt 45 && $thr -gt 0 ]]; then
    result PASS cpu-quota "$info (bound 10-45%)"
else
    result FAIL cpu-quota "$info (bound 10-45%); exit=$orc output: $out"
fi

# 8. unprivileged user namespaces (with pid and mount namespaces)
# shellcheck disable=SC2016  # expanded by the inner shell
out=$(timeout 30 unshare -Urpmf --mount-proc sh -c 'echo "uid=$(id -u) pid=$$ procs=$(ls -d /proc/[0-9]* | wc -l)"' 2>&1)
orc=$?
if [[ $orc -eq 0 && $(field uid "$out") == 0 && $(field pid "$out") == 1 ]]; then
    result PASS userns "unshare -Urpmf --mount-proc: $out (unprivileged_userns_clone=$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo n/a), max_user_namespaces=$(cat /proc/sys/user/max_user_namespaces))"
else
    result FAIL userns "unshare -Urpmf --mount-proc exit=$orc: $out"
fi

echo "selftest: $npass passed, $nfail failed, $nskip skipped"
((nfail == 0))
