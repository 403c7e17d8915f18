#!/bin/bash
# Host setup for the hutch qemu test harness (tests/vm/).
#
# Idempotent; meant to be run as root (CI does).  It installs:
#   - qemu-system-x86 from bookworm-backports (bookworm's own 7.2 conflicts with the
#     qemu-utils 10.x these machines ship),
#   - mmdebstrap, cpio, e2fsprogs, xz-utils, qemu-utils (image build).
# When everything is already there it returns at once without touching apt.
#
# Exit status: 0 when the tools are present afterwards, 1 otherwise.
set -euo pipefail

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

# The mirror the host already uses (deb822 first, then one-line sources.list).
host_mirror() {
    local m=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [[ -z "$m" && -r /etc/apt/sources.list ]]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    printf '%s\n' "${m:-http://deb.debian.org/debian}"
}

apt_opts=(-o DPkg::Lock::Timeout=300 -y --no-install-recommends)
export DEBIAN_FRONTEND=noninteractive

bpo=/etc/apt/sources.list.d/bookworm-backports.sources
updated=0
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(host_mirror)
    log "adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" > "$bpo.tmp"
    mv "$bpo.tmp" "$bpo"
fi

pkgs=()
for c in $missing; do
    pkgs+=("${need[$c]}")
done
log "installing: ${pkgs[*]}"
log "apt-get update"
apt-get -o DPkg::Lock::Timeout=300 update -qq
updated=1

# qemu packages from backports, the rest from bookworm.
qemu_pkgs=() other_pkgs=()
for p in "${pkgs[@]}"; do
    case "$p" in
        qemu-*) qemu_pkgs+=("$p") ;;
        *) other_pkgs+=("$p") ;;
    esac
done
if ((${#qemu_pkgs[@]})); then
    apt-get "${apt_opts[@]}" -t bookworm-backports install "${qemu_pkgs[@]}"
fi
if ((${#other_pkgs[@]})); then
    apt-get "${apt_opts[@]}" install "${other_pkgs[@]}"
fi

missing=$(missing_cmds)
if [[ -n "$missing" ]]; then
    log "still missing after install (apt update=$updated): $(echo "$missing" | tr '\n' ' ')"
    exit 1
fi
log "done ($(qemu-system-x86_64 --version | head -n1))"
