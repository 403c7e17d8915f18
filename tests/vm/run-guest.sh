#!/bin/bash
# Boot the hutch test VM (Debian bookworm, systemd as PID 1, pure cgroup v2)
# and run one script in it.
#
# usage: run-guest.sh --share HOSTDIR [options] -- GUEST_SCRIPT [ARGS...]
#
#   --share HOSTDIR   directory shared read-write into the guest at /mnt/host
#                     (9p, security_model=passthrough: the guest sees the host's
#                     owners and modes; files the guest creates belong to uid
#                     1000 on the host, so HOSTDIR must be accessible to uid 1000)
#   --timeout SECS    bound on the VM run: boot + script + power-off (default 240)
#   --as-root         run GUEST_SCRIPT as root (in a system service) instead of
#                     as user tester in its systemd user session
#   --env NAME=VALUE  extra environment for GUEST_SCRIPT (repeatable)
#   --console-log F   where to keep the guest console log (host timestamps);
#                     default $HUTCH_VM_CACHE/logs/console-<time>-<pid>.log
#   --journal F       copy the guest's systemd journal to F after the script
#   --mem MB          guest memory (default 1024)
#   -v, --verbose     also copy the console to stderr while it runs
#
# GUEST_SCRIPT is a path relative to HOSTDIR; it must be executable.  It runs
# with /mnt/host as working directory.  By default it runs as user tester
# (uid 1000) in a transient service of tester's systemd user manager, i.e. in
# user@1000.service's delegated cgroup subtree, with XDG_RUNTIME_DIR=/run/user/1000
# and DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus, so
# "systemd-run --user --scope -p MemoryMax=..." works.  HUTCH_VM=1 and
# HUTCH_VM_SHARE=/mnt/host are set.
#
# Its stdout and stderr are streamed, merged, to this script's stdout.  The
# harness's own messages go to stderr, prefixed "run-guest: ".
#
# Exit status: GUEST_SCRIPT's (128+N if it died of signal N), or
#   77   SKIP: the VM cannot run on this machine (one line "SKIP: reason")
#   124  the VM run timed out (the VM is killed; console tail on stderr)
#   125  harness failure: image build failed, boot failed, no status reported
#   2    usage error
# The image is built first if it is not cached (see build-image.sh); that
# build is not counted in --timeout (it has its own bound,
# HUTCH_VM_BUILD_TIMEOUT, default 900 s).
#
# Environment: HUTCH_VM_CACHE (image cache), HUTCH_VM_ACCEL (tcg | kvm; default
# tcg), HUTCH_VM_CPU (default qemu64,+rdrand under tcg), HUTCH_VM_APPEND (extra kernel
# command line), HUTCH_VM_NO_SETUP=1 (never run setup-host.sh).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

log() { printf 'run-guest: %s\n' "$*" >&2; }
usage() { sed -n '2,/^# shellcheck source-path/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
usage_error() { log "$*"; log "see: $0 --help"; exit 2; }
skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

share="" timeout=240 as_root=0 console_log="" journal_out="" mem=${HUTCH_VM_MEM:-1024} verbose=0
envs=()
while (($#)); do
    case "$1" in
    --share) share=${2:?}; shift ;;
    --share=*) share=${1#*=} ;;
    --timeout) timeout=${2:?}; shift ;;
    --timeout=*) timeout=${1#*=} ;;
    --as-root) as_root=1 ;;
    --env) envs+=("${2:?}"); shift ;;
    --env=*) envs+=("${1#*=}") ;;
    --console-log) console_log=${2:?}; shift ;;
    --console-log=*) console_log=${1#*=} ;;
    --journal) journal_out=${2:?}; shift ;;
    --journal=*) journal_out=${1#*=} ;;
    --mem) mem=${2:?}; shift ;;
    --mem=*) mem=${1#*=} ;;
    -v | --verbose) verbose=1 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    *) usage_error "unknown argument: $1" ;;
    esac
    shift
done
(($# >= 1)) || usage_error "missing -- GUEST_SCRIPT"
script=$1
shift
[[ -n "$share" ]] || usage_error "--share HOSTDIR is required"
[[ -d "$share" ]] || usage_error "--share $share: not a directory"
share=$(cd "$share" && pwd -P)
[[ "$timeout" =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a positive integer (seconds)"
[[ "$mem" =~ ^[1-9][0-9]*$ ]] || usage_error "--mem must be a positive integer (MB)"
for e in "${envs[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || usage_error "--env wants NAME=VALUE, got '$e'"
done
case "$script" in
/* | ../* | */../* | .. | */..) usage_error "GUEST_SCRIPT must be a path inside HOSTDIR, relative to it: $script" ;;
esac
[[ -f "$share/$script" ]] || usage_error "$share/$script: no such file"
[[ -x "$share/$script" ]] || usage_error "$share/$script: not executable"

# ---- can a VM run here at all? ---------------------------------------------
[[ $(uname -s) == Linux ]] || skip "the VM harness needs a Linux host (this is $(uname -s))"
[[ $(uname -m) == x86_64 ]] || skip "the VM harness needs an x86_64 host (this is $(uname -m))"
[[ $(id -u) -eq 0 ]] ||
    skip "run-guest.sh needs root: the 9p share uses security_model=passthrough (qemu must chown files to the guest's uids) and images are built with mmdebstrap in root mode"

qemu=${HUTCH_VM_QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then
    if [[ ${HUTCH_VM_NO_SETUP:-0} == 1 ]]; then
        skip "$qemu or mmdebstrap not installed and HUTCH_VM_NO_SETUP=1 (run tests/vm/setup-host.sh)"
    fi
    log "qemu or mmdebstrap missing; running setup-host.sh"
    if ! "$here/setup-host.sh" >&2; then
        skip "$qemu or mmdebstrap not installed and setup-host.sh could not install them (see its messages above)"
    fi
fi
command -v "$qemu" >/dev/null 2>&1 || skip "$qemu not found after setup-host.sh"
if ! qver=$("$qemu" --version 2>&1 | head -n1); then
    skip "$qemu does not run: $qver"
fi
accel=${HUTCH_VM_ACCEL:-tcg}
# shellcheck disable=SC2054  # commas belong to qemu option values
case "$accel" in
tcg) accel_args=(-accel tcg,thread=multi -cpu "${HUTCH_VM_CPU:-qemu64,+rdrand}") ;;
kvm)
    [[ -r /dev/kvm && -w /dev/kvm ]] || skip "HUTCH_VM_ACCEL=kvm but /dev/kvm is not usable"
    accel_args=(-accel kvm -cpu "${HUTCH_VM_CPU:-host}")
    ;;
*) usage_error "HUTCH_VM_ACCEL must be tcg or kvm" ;;
esac
"$qemu" -accel help 2>/dev/null | grep -qx "$accel" || skip "$qver has no $accel accelerator"

if [[ $as_root -eq 0 ]] && command -v setpriv >/dev/null 2>&1; then
    # The guest sees host modes as they are: check as uid 1000 what tester will get.
    if ! setpriv --reuid=1000 --regid=1000 --clear-groups -- test -x "$share" -a -r "$share/$script" -a -x "$share/$script"; then
        usage_error "$share or $script is not accessible to uid 1000 (user tester in the guest); e.g. chmod 0777 the directory, or use --as-root"
    fi
fi

# ---- image -------------------------------------------------------------------
img=$(hutch_vm_image_dir)
if ! hutch_vm_image_ok "$img"; then
    log "no cached image for this recipe; building it (once)"
    if ! timeout "${HUTCH_VM_BUILD_TIMEOUT:-900}" "$here/build-image.sh" >&2; then
        log "ERROR: image build failed"
        exit 125
    fi
    hutch_vm_image_ok "$img" || { log "ERROR: build-image.sh succeeded but $img is incomplete"; exit 125; }
fi

# ---- run directory, logs -----------------------------------------------------
cache=$(hutch_vm_cache)
run=$(mktemp -d "${TMPDIR:-/tmp}/hutch-vm.XXXXXX")
ctl=$run/ctl
mkdir -m 0755 "$ctl"
if [[ -z "$console_log" ]]; then
    mkdir -p "$cache/logs"
    console_log=$cache/logs/console-$(date +%Y%m%d-%H%M%S)-$$.log
    # keep the 50 newest
    find "$cache/logs" -maxdepth 1 -name 'console-*.log' -printf '%T@ %p\n' | sort -rn |
        awk 'NR > 49 { print $2 }' | xargs -r rm -f
fi
: > "$console_log"

pids=()
qpid=""
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    local p
    [[ -n "$qpid" ]] && kill "$qpid" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    rm -rf "$run"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# cmd: NUL-terminated fields, see image/hutch-vm-runner
mode=user
((as_root)) && mode=root
flags=""
[[ -n "$journal_out" ]] && flags=journal
{
    printf '%s\0' hutch-vm-cmd-1 "$mode" "$flags" "${#envs[@]}"
    for e in "${envs[@]}"; do printf '%s\0' "$e"; done
    printf '%s\0' "$script"
    for a in "$@"; do printf '%s\0' "$a"; done
} > "$ctl/cmd"

mkfifo "$run/console.fifo" "$run/output.fifo"

# Console: prefix every line with host seconds since qemu started.
t_start=${EPOCHREALTIME/[.,]/}
stamp_console() {
    local line now d
    while IFS= read -r line || [[ -n "$line" ]]; do
        now=${EPOCHREALTIME/[.,]/}
        d=$((now - t_start))
        line=${line//$'\r'/}
        printf '[%4d.%03d] %s\n' $((d / 1000000)) $(((d % 1000000) / 1000)) "$line"
        ((verbose)) && printf 'console: %s\n' "$line" >&2
    done < "$run/console.fifo" >> "$console_log"
}
stamp_console &
pids+=($!)
# Script output: straight to our stdout.
cat "$run/output.fifo" &
outpid=$!
pids+=("$outpid")

append="console=ttyS0 panic=-1 tsc=reliable mitigations=off"
append+=" systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
append+=" i8042.noaux i8042.nokbd i8042.nopnp ${HUTCH_VM_APPEND:-}"
# shellcheck disable=SC2054  # commas belong to qemu option values
qemu_args=(
    -nodefaults -no-user-config -display none -no-reboot
    -machine q35 "${accel_args[@]}" -smp 2 -m "$mem"
    -kernel "$img/vmlinux" -initrd "$img/initrd.cpio" -append "$append"
    -drive "file=$img/rootfs.qcow2,if=none,id=root,format=qcow2,snapshot=on,cache=unsafe"
    -device virtio-blk-pci,drive=root
    -fsdev "local,id=share,path=$share,security_model=passthrough"
    -device virtio-9p-pci,fsdev=share,mount_tag=hutchshare
    -fsdev "local,id=ctl,path=$ctl,security_model=passthrough"
    -device virtio-9p-pci,fsdev=ctl,mount_tag=hutchctl
    -chardev "file,id=con,path=$run/console.fifo" -serial chardev:con
    -device virtio-serial-pci
    -chardev "file,id=out,path=$run/output.fifo"
    -device virtserialport,chardev=out,name=hutch.out
)
printf '%s\n' "qemu: $qemu ${qemu_args[*]}" > "$run/qemu.log"

timeout --kill-after=5 "$timeout" "$qemu" "${qemu_args[@]}" </dev/null >>"$run/qemu.log" 2>&1 &
qpid=$!
qrc=0
wait "$qpid" || qrc=$?
qpid=""
t_end=${EPOCHREALTIME/[.,]/}
secs=$(((t_end - t_start) / 1000000)).$((((t_end - t_start) % 1000000) / 100000))

# Readers end at EOF once qemu is gone; if qemu never opened a FIFO they
# would block forever in open(): give them a moment, then stop them.
for _ in $(seq 30); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()

console_tail() {
    log "---- last 40 lines of the console log ($console_log) ----"
    tail -n 40 "$console_log" >&2
    if [[ $(wc -l < "$run/qemu.log") -gt 1 ]]; then
        log "---- qemu messages ----"
        tail -n +2 "$run/qemu.log" >&2
    fi
    log "----"
}

if [[ -n "$journal_out" && -f "$ctl/journal" ]]; then
    cp "$ctl/journal" "$journal_out"
fi

if ((qrc == 124 || qrc == 137)) && [[ ! -s "$ctl/status" ]]; then
    log "TIMEOUT: the VM did not finish within ${timeout} s; killed qemu"
    console_tail
    exit 124
fi
if [[ ! -s "$ctl/status" ]]; then
    log "ERROR: the guest reported no status (qemu exited with $qrc after $secs s)"
    console_tail
    exit 125
fi
status=$(<"$ctl/status")
case "$status" in
exit\ *)
    rc=${status#exit }
    [[ "$rc" =~ ^[0-9]+$ ]] || { log "ERROR: bad status '$status'"; console_tail; exit 125; }
    log "guest script exited with $rc; VM run took $secs s; console log: $console_log"
    exit "$rc"
    ;;
error\ *)
    log "ERROR: guest harness: ${status#error }"
    console_tail
    exit 125
    ;;
*)
    log "ERROR: bad status '$status'"
    console_tail
    exit 125
    ;;
esac
