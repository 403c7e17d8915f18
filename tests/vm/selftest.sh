#!/bin/bash
# Self-test of the VM harness: boots the guest once and runs
# selftest-guest.sh in it as user tester (cgroup v2 only, delegation to
# user@1000.service, MemoryMax OOM kill, TasksMax, CPUQuota, user namespaces).
#
# usage: selftest.sh [run-guest.sh options, e.g. -v, --journal FILE, --timeout SECS]
#
# Prints the guest's PASS/FAIL lines and its closing line
# "selftest: N passed, N failed, N skipped".  Exit status: 0 when every check
# passed, 77 (with a "SKIP: reason" line) when no VM can run here, non-zero
# otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dir=$(mktemp -d "${TMPDIR:-/tmp}/hutch-vm-selftest.XXXXXX")
trap 'rm -rf "$dir"' EXIT
# The guest's user tester (uid 1000) must be able to read and run the script.
chmod 0755 "$dir"
install -m 0755 "$here/selftest-guest.sh" "$dir/selftest-guest.sh"

t0=${EPOCHREALTIME/[.,]/}
rc=0
"$here/run-guest.sh" --share "$dir" "$@" -- selftest-guest.sh | tee "$dir/out" || rc=${PIPESTATUS[0]}
t1=${EPOCHREALTIME/[.,]/}
d=$(((t1 - t0) / 100000))
echo "selftest: run-guest.sh exited $rc after $((d / 10)).$((d % 10)) s (including any image build)" >&2

if ((rc == 0)) && ! grep -qE '^selftest: [0-9]+ passed, 0 failed' "$dir/out"; then
    echo "selftest: FAIL: the guest exited 0 but printed no passing summary line" >&2
    exit 1
fi
exit "$rc"
