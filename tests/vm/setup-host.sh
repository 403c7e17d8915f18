#!/bin/bash
# Host setup for the hutch qemu test harness (tests/vm/), Debian hosts.
#
# Idempotent; meant to be run as root (CI does).  It installs:
#   - qemu-system-x86 from bookworm-backports (bookworm's own 7.2 conflicts with the
#     qemu-utils 10.x these machines ship),
#   - mmdebstrap, cpio, e2fsprogs, xz-utils, qemu-utils (image build).
# When everything is already there it returns at once without touching apt.
#
# Exit status: 0 when the tools are present afterwards, 1 otherwise.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

log() { printf 'setup-host: %s\n' "$*" >&2; }

# command name -> Debian package providing it
declare -A need=(
    [qemu-system-x86_64]=qemu-system-x86
    [qemu-img]=qemu-utils
    [mmdebstrap]=mmdebstrap
    [cpio]=cpio
    [mkfs.ext4]=e2fsprogs
    [xz]=xz-utils
    [dpkg-deb]=dpkg
)

missing_cmds() {
    local c
    for c in "${!need[@]}"; do
        command -v "$c" >/dev/null 2>&1 || printf '%s\n' "$c"
    done
}

missing=$(missing_cmds | sort)
if [[ -z "$missing" ]]; then
    log "all tools present ($(qemu-system-x86_64 --version | head -n1))"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    log "missing: $(echo "$missing" | tr '\n' ' ')- need root to install them"
    exit 1
fi

apt_opts=(-o DPkg::Lock::Timeout=300 -y --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive

# On bookworm, qemu comes from bookworm-backports (same mirror as the host's
# apt); on a newer Debian its own qemu is recent enough.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
qemu_target=()
if [[ $codename == bookworm ]]; then
    qemu_target=(-t bookworm-backports)
    bpo=/etc/apt/sources.list.d/bookworm-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        mirror=$(hutch_vm_host_mirror main)
        log "adding bookworm-backports from $mirror"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$mirror" > "$bpo.tmp"
        mv "$bpo.tmp" "$bpo"
    fi
fi

pkgs=()
for c in $missing; do
    pkgs+=("${need[$c]}")
done
log "installing: ${pkgs[*]}"
log "apt-get update"
apt-get -o DPkg::Lock::Timeout=300 update -qq

# qemu packages from backports, the rest from bookworm.
qemu_pkgs=() other_pkgs=()
for p in "${pkgs[@]}"; do
    case "$p" in
        qemu-*) qemu_pkgs+=("$p") ;;
        *) other_pkgs+=("$p") ;;
    esac
done
if ((${#qemu_pkgs[@]})); then
    apt-get "${apt_opts[@]}" "${qemu_target[@]}" install "${qemu_pkgs[@]}"
fi
if ((${#other_pkgs[@]})); then
    apt-get "${apt_opts[@]}" install "${other_pkgs[@]}"
fi

missing=$(missing_cmds)
if [[ -n "$missing" ]]; then
    log "still missing after install: $(echo "$missing" | tr '\n' ' ')"
    exit 1
fi
log "done ($(qemu-system-x86_64 --version | head -n1))"
