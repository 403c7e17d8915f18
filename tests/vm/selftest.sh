#!/bin/bash
# Self-test of the VM harness.
#
# usage: selftest.sh [--harness] [run-guest.sh options, e.g. -v, --journal FILE]
#
# Boots the guest once and runs selftest-guest.sh in it as user tester:
# cgroup v2 only, delegation to user@1000.service, a user scope, MemoryMax OOM
# kill, TasksMax, CPUQuota, user namespaces.  Prints the guest's PASS/FAIL
# lines and its closing line "selftest: N passed, N failed, N skipped".
#
# --harness  also checks run-guest.sh's own interface (three more boots, about
#            a minute): exit status, arguments, --env and stderr pass-through,
#            --as-root, --timeout, and the SKIP and usage-error exits.
#
# Exit status: 0 when every check passed, 77 (with a "SKIP: reason" line) when
# no VM can run here, non-zero otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
harness=0
if [[ ${1:-} == --harness ]]; then
    harness=1
    shift
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/hutch-vm-selftest.XXXXXX")
trap 'rm -rf "$dir"' EXIT
# The guest's user tester (uid 1000) must be able to read and run the scripts.
chmod 0755 "$dir"
install -m 0755 "$here/selftest-guest.sh" "$dir/selftest-guest.sh"

now_ds() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 100000)); } # tenths of a second
fmt_ds() { echo "$(($1 / 10)).$(($1 % 10))"; }

t0=$(now_ds)
rc=0
"$here/run-guest.sh" --share "$dir" "$@" -- selftest-guest.sh | tee "$dir/out" || rc=${PIPESTATUS[0]}
echo "selftest: run-guest.sh exited $rc after $(fmt_ds $(($(now_ds) - t0))) s (including any image build)" >&2
if ((rc == 77)); then
    exit 77
fi
if ((rc == 0)) && ! grep -qE '^selftest: [0-9]+ passed, 0 failed' "$dir/out"; then
    echo "selftest: FAIL: the guest exited 0 but printed no passing summary line" >&2
    rc=1
fi
((harness)) || exit "$rc"

# ---- run-guest.sh's interface ---------------------------------------------------
npass=0 nfail=0
check() { # name condition-status details
    if [[ $2 -eq 0 ]]; then
        echo "PASS harness-$1: $3"
        npass=$((npass + 1))
    else
        echo "FAIL harness-$1: $3"
        nfail=$((nfail + 1))
    fi
}
run() { # capture stdout, stderr and status of run-guest.sh
    local r=0
    "$here/run-guest.sh" "$@" >"$dir/stdout" 2>"$dir/stderr" || r=$?
    echo "$r"
}

cat > "$dir/status.sh" <<'EOF'
#!/bin/sh
echo "args=$#:$1|$2 foo=$FOO vm=$HUTCH_VM user=$(id -un) pwd=$(pwd)"
echo "to stderr" >&2
echo "written by the guest" > "$HUTCH_VM_SHARE/from-guest.txt"
exit 7
EOF
cat > "$dir/root.sh" <<'EOF'
#!/bin/sh
echo "uid=$(id -u) cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup) dmesg_lines=$(dmesg | wc -l)"
EOF
cat > "$dir/hang.sh" <<'EOF'
#!/bin/sh
echo "sleeping"
exec sleep 1000
EOF
chmod 0755 "$dir"/*.sh
chmod 0777 "$dir" # let tester create from-guest.txt

t=$(now_ds)
r=$(run --share "$dir" --env FOO=bar -- status.sh "a b" c)
out=$(tr '\n' ' ' < "$dir/stdout")
owner=$(stat -c %u "$dir/from-guest.txt" 2>/dev/null || echo none)
[[ $r == 7 && $out == "args=2:a b|c foo=bar vm=1 user=tester pwd=/mnt/host to stderr " && $owner == 1000 ]]
check exit-args-env $? "exit=$r (want 7), stdout: '$out', from-guest.txt owner uid $owner (want 1000) ($(fmt_ds $(($(now_ds) - t))) s)"

t=$(now_ds)
r=$(run --share "$dir" --as-root -- root.sh)
out=$(cat "$dir/stdout")
[[ $r == 0 && $out == "uid=0 cgroup=/system.slice/"* && ${out##*dmesg_lines=} -gt 0 ]]
check as-root $? "exit=$r, stdout: '$out' ($(fmt_ds $(($(now_ds) - t))) s)"

t=$(now_ds)
r=$(run --share "$dir" --timeout 30 -- hang.sh)
[[ $r == 124 ]] && grep -q 'TIMEOUT' "$dir/stderr" && grep -q '^sleeping$' "$dir/stdout"
check timeout $? "exit=$r (want 124), $(grep -m1 TIMEOUT "$dir/stderr" || echo 'no TIMEOUT message') ($(fmt_ds $(($(now_ds) - t))) s)"

r=$(HUTCH_VM_QEMU=/nonexistent/qemu-system-x86_64 HUTCH_VM_NO_SETUP=1 run --share "$dir" -- root.sh)
out=$(cat "$dir/stdout")
[[ $r == 77 && $out == "SKIP: "* ]]
check skip $? "exit=$r (want 77), stdout: '$out'"

r=$(run --share "$dir" -- no-such-script.sh)
[[ $r == 2 ]]
check usage-error $? "exit=$r (want 2), stderr: '$(head -n1 "$dir/stderr")'"

echo "harness: $npass passed, $nfail failed"
((nfail == 0)) || rc=1
exit "$rc"
