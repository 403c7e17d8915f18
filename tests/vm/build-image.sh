#!/bin/bash
# Build the hutch test VM image: a Debian bookworm guest with systemd as PID 1,
# pure cgroup v2 and a lingering user "tester" (uid 1000).
#
# usage: build-image.sh [--force] [--print-dir]
#   --force      rebuild even if the cached image for this recipe exists
#   --print-dir  print the image directory for the current recipe and exit
#
# Output, in $HUTCH_VM_CACHE (default tests/vm/cache)/img-<recipe hash>/:
#   vmlinux       uncompressed kernel (PVH entry point; direct boot, no decompression)
#   initrd.cpio   uncompressed busybox initrd: a few modules, mount /dev/vda, switch_root
#   rootfs.qcow2  ext4 root file system (open it with snapshot=on: never written)
#   info.txt      kernel, package list, sizes, build time
#   complete      written last
# The build happens in tmp-<hash>-<pid>/ and is renamed into place, so an
# interrupted build never leaves a directory that looks usable.
# Needs root (mmdebstrap in root mode, mkfs.ext4 -d keeping ownership) and the
# Debian mirror the host's apt uses.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

force=0
while (($#)); do
    case "$1" in
    --force) force=1 ;;
    --print-dir) hutch_vm_image_dir; exit 0 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1" ;;
    esac
    shift
done

cache=$(hutch_vm_cache)
hash=$(hutch_vm_recipe_hash)
img=$cache/img-$hash

if ((!force)) && hutch_vm_image_ok "$img"; then
    log "cached image for recipe $hash: $img"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "building the image needs root (mmdebstrap root mode, mkfs.ext4 -d)"

for c in mmdebstrap mkfs.ext4 qemu-img cpio xz dpkg-deb flock; do
    if ! command -v "$c" >/dev/null 2>&1; then
        log "$c missing; running setup-host.sh"
        "$here/setup-host.sh" || die "setup-host.sh failed"
        break
    fi
done
hookdir=/usr/share/mmdebstrap/hooks/file-mirror-automount
[[ -d $hookdir ]] || die "$hookdir missing (mmdebstrap too old?)"

mkdir -p "$cache"
exec 9>"$cache/build.lock"
if ! flock -n 9; then
    log "another build holds $cache/build.lock; waiting"
    flock -w 900 9 || die "timed out waiting for $cache/build.lock"
fi
if ((!force)) && hutch_vm_image_ok "$img"; then
    log "image built by a concurrent run: $img"
    exit 0
fi

# We hold the lock, so any tmp-* left over is from an interrupted build.
remove_tree() {
    local d=$1 m
    [[ -e "$d" ]] || return 0
    # never recurse into something still mounted inside (mmdebstrap mounts /proc, /sys, /dev)
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | awk -v d="$d/" 'index($0, d) == 1' | sort -r)
    rm -rf --one-file-system "$d"
}
for old in "$cache"/tmp-*; do
    [[ -e "$old" ]] || continue
    log "removing stale $old"
    remove_tree "$old"
done

tmp=$cache/tmp-$hash-$$
cleanup() {
    local rc=$?
    if [[ -n "${tmp:-}" && -e "$tmp" ]]; then
        if [[ ${HUTCH_VM_KEEP_BUILD:-0} == 1 ]]; then
            log "keeping $tmp (HUTCH_VM_KEEP_BUILD=1)"
        else
            remove_tree "$tmp"
        fi
    fi
    ((rc == 0)) || log "build FAILED (exit $rc)"
}
trap cleanup EXIT
trap "exit 130" INT
trap "exit 143" TERM HUP
mkdir -p "$tmp"
t0=$EPOCHREALTIME
elapsed() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

mirror=$(hutch_vm_host_mirror main)
secmirror=$(hutch_vm_host_mirror security)
log "building recipe $hash from $mirror (+ $secmirror)"

# linux-image depends on "initramfs-tools | linux-initramfs-tool"; the guest
# boots with our own initrd, so satisfy it with an empty package instead of
# paying for an initramfs build.
mkdir -p "$tmp/noinitramfs/DEBIAN"
cat > "$tmp/noinitramfs/DEBIAN/control" <<'CONTROL'
Package: hutch-vm-no-initramfs
Version: 1
Architecture: all
Maintainer: hutch test harness <root@localhost>
Provides: linux-initramfs-tool
Description: no initramfs for the hutch test VM
 The hutch test VM boots with its own tiny initrd.
CONTROL
dpkg-deb --build "$tmp/noinitramfs" "$tmp/hutch-vm-no-initramfs.deb" >/dev/null

# apt: tests/package_vm.rs removes and purges hutch's .deb with apt-get, as an
# administrator would (the guest has no network; removal needs none).
packages=(
    systemd systemd-sysv dbus dbus-user-session libpam-systemd
    linux-image-amd64 busybox-static passwd apt
    procps kmod iproute2 libcap2-bin strace psmisc
)
# Keep only the kernel modules a test VM can use: file systems (ext4, 9p,
# overlay, fuse...), virtio, crypto/lib helpers and a few netns devices.
dpkgopts=(
    'path-exclude=/usr/share/doc/*' 'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*'
    'path-exclude=/usr/share/lintian/*' 'path-exclude=/usr/share/bash-completion/*'
    'path-exclude=/lib/modules/*/kernel/*'
    'path-include=/lib/modules/*/kernel/fs/ext4/*' 'path-include=/lib/modules/*/kernel/fs/jbd2/*'
    'path-include=/lib/modules/*/kernel/fs/mbcache.ko' 'path-include=/lib/modules/*/kernel/fs/9p/*'
    'path-include=/lib/modules/*/kernel/fs/netfs/*' 'path-include=/lib/modules/*/kernel/fs/fscache/*'
    'path-include=/lib/modules/*/kernel/fs/overlayfs/*' 'path-include=/lib/modules/*/kernel/fs/fuse/*'
    'path-include=/lib/modules/*/kernel/fs/squashfs/*' 'path-include=/lib/modules/*/kernel/fs/binfmt_misc.ko'
    'path-include=/lib/modules/*/kernel/net/9p/*'
    'path-include=/lib/modules/*/kernel/drivers/virtio/*' 'path-include=/lib/modules/*/kernel/drivers/block/virtio_blk.ko'
    'path-include=/lib/modules/*/kernel/drivers/block/loop.ko' 'path-include=/lib/modules/*/kernel/drivers/char/virtio_console.ko'
    'path-include=/lib/modules/*/kernel/drivers/net/veth.ko' 'path-include=/lib/modules/*/kernel/drivers/net/dummy.ko'
    'path-include=/lib/modules/*/kernel/crypto/*' 'path-include=/lib/modules/*/kernel/lib/*'
)
mm=(mmdebstrap --variant=essential --mode=root --hook-dir="$hookdir"
    "--include=$(IFS=,; echo "${packages[*]}")"
    "--include=$tmp/hutch-vm-no-initramfs.deb")
for o in "${dpkgopts[@]}"; do mm+=("--dpkgopt=$o"); done
mm+=(bookworm "$tmp/rootfs"
    "deb $mirror bookworm main"
    "deb $mirror bookworm-updates main"
    "deb $secmirror bookworm-security main")
if ! "${mm[@]}" > "$tmp/mmdebstrap.log" 2>&1; then
    tail -n 30 "$tmp/mmdebstrap.log" >&2
    die "mmdebstrap failed (log above)"
fi
log "mmdebstrap done at $(elapsed) s"

root=$tmp/rootfs
kver=$(basename "$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")
[[ -n "$kver" && -f "$root/boot/vmlinuz-$kver" ]] || die "no kernel found in the rootfs"

# ---- guest configuration -------------------------------------------------
chroot "$root" useradd --create-home --uid 1000 --user-group --shell /bin/bash tester
mkdir -p "$root/var/lib/systemd/linger"
: > "$root/var/lib/systemd/linger/tester"
printf '4a7f9c2e61d84b0f9e3c5a1d2b6e8f70\n' > "$root/etc/machine-id"
echo hutch-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 hutch-vm\n::1 localhost\n' > "$root/etc/hosts"
echo '# root is /dev/vda, mounted by the initrd' > "$root/etc/fstab"
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"

# Test-friendly sysctls: let tester read dmesg (OOM/pids messages).
cat > "$root/etc/sysctl.d/90-hutch-vm.conf" <<'SYSCTL'
kernel.dmesg_restrict = 0
kernel.unprivileged_userns_clone = 1
SYSCTL
mkdir -p "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n' > "$root/etc/systemd/journald.conf.d/hutch-vm.conf"

# /tmp in RAM.
if [[ -f "$root/usr/share/systemd/tmp.mount" ]]; then
    cp "$root/usr/share/systemd/tmp.mount" "$root/etc/systemd/system/tmp.mount"
    mkdir -p "$root/etc/systemd/system/local-fs.target.wants"
    ln -sf /etc/systemd/system/tmp.mount "$root/etc/systemd/system/local-fs.target.wants/tmp.mount"
fi

# Nothing in the guest needs devices probed by udev (root comes from the
# initrd, the fstab is empty), a login prompt, timers or first-boot setup:
# masking them is what brings a TCG boot down to ~10 s.
mask=(
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
    systemd-udev-trigger.service systemd-udev-settle.service systemd-hwdb-update.service
    getty.target getty@.service serial-getty@.service console-getty.service getty-static.service
    systemd-remount-fs.service systemd-sysusers.service systemd-firstboot.service
    systemd-machine-id-commit.service ldconfig.service systemd-update-done.service
    systemd-journal-catalog-update.service systemd-pstore.service systemd-random-seed.service
    systemd-update-utmp.service systemd-update-utmp-runlevel.service
    e2scrub_reap.service e2scrub_all.timer fstrim.timer dpkg-db-backup.timer
    systemd-tmpfiles-clean.timer
    sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount
    sys-fs-fuse-connections.mount dev-hugepages.mount
    proc-sys-fs-binfmt_misc.automount systemd-binfmt.service
    modprobe@.service
)
for u in "${mask[@]}"; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
for w in "$root"/lib/systemd/system/timers.target.wants/* "$root"/etc/systemd/system/timers.target.wants/*; do
    [[ -e "$w" || -L "$w" ]] || continue
    ln -sf /dev/null "$root/etc/systemd/system/$(basename "$w")"
done

# Generators cost an exec each under TCG and have nothing to do here (empty
# fstab, no encrypted/verity disks, no getty, no SysV scripts); keep only the
# debug and run generators (systemd.mask=, systemd.run= on the command line).
mkdir -p "$root/etc/systemd/system-generators" "$root/etc/systemd/user-generators"
for g in "$root"/lib/systemd/system-generators/*; do
    case "${g##*/}" in systemd-debug-generator | systemd-run-generator) continue ;; esac
    ln -sf /dev/null "$root/etc/systemd/system-generators/${g##*/}"
done
for g in "$root"/lib/systemd/user-generators/*; do
    [[ -e "$g" ]] && ln -sf /dev/null "$root/etc/systemd/user-generators/${g##*/}"
done
# Emergency/rescue mode: report and power off instead of waiting for a login.
for u in emergency.service rescue.service; do
    install -D -m 0644 "$here/image/emergency.conf" "$root/etc/systemd/system/$u.d/hutch-vm.conf"
done

# The test runner.
install -D -m 0755 "$here/image/hutch-vm-runner" "$root/usr/local/sbin/hutch-vm-runner"
install -D -m 0755 "$here/image/hutch-vm-exec" "$root/usr/local/libexec/hutch-vm-exec"
install -D -m 0644 "$here/image/hutch-vm-run.service" "$root/etc/systemd/system/hutch-vm-run.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/hutch-vm-run.service "$root/etc/systemd/system/multi-user.target.wants/hutch-vm-run.service"

# ---- kernel: uncompressed vmlinux (PVH direct boot) -----------------------
out=$tmp/out
mkdir -p "$out"
vmlinuz=$root/boot/vmlinuz-$kver
off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -n1 | cut -d: -f1)
[[ -n "$off" ]] || die "no xz payload in $vmlinuz (kernel compression changed?)"
tail -c +$((off + 1)) "$vmlinuz" | xz -dc --single-stream > "$out/vmlinux" 2>/dev/null || true
[[ $(head -c 4 "$out/vmlinux" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]] ||
    die "extracted kernel is not an ELF file"
rm -f "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-*

# ---- initrd: busybox + the modules needed to mount /dev/vda ---------------
moddir=$root/lib/modules/$kver
declare -A seen=()
order=()
moddeps() { # relpath -> its dependencies (relpaths), from modules.dep
    awk -v m="$1:" '$1 == m { for (i = 2; i <= NF; i++) print $i; exit }' "$moddir/modules.dep"
}
addmod() { # add a module (relpath) after its dependencies
    local m=$1 d
    [[ -n "${seen[$m]:-}" ]] && return 0
    seen[$m]=1
    for d in $(moddeps "$m"); do addmod "$d"; done
    order+=("$m")
}
for name in virtio_pci virtio_blk virtio_console crc32c_generic ext4 9pnet_virtio 9p; do
    rel=$(awk -v n="$name" '{ p = $1; sub(/:$/, "", p); b = p; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b);
            gsub(/-/, "_", b); if (b == n) { print p; exit } }' "$moddir/modules.dep")
    if [[ -z "$rel" ]]; then
        grep -q "/$name.ko" "$moddir/modules.builtin" || die "module $name neither built in nor available"
        continue
    fi
    addmod "$rel"
done
ird=$tmp/initrd
mkdir -p "$ird/bin" "$ird/lib/modules"
cp "$root/bin/busybox" "$ird/bin/busybox"
for a in sh mount umount insmod mkdir sleep switch_root poweroff echo cat; do
    ln -s busybox "$ird/bin/$a"
done
ln -s bin "$ird/sbin"
install -m 0755 "$here/image/init" "$ird/init"
for m in "${order[@]}"; do
    install -D -m 0644 "$moddir/$m" "$ird/lib/modules/$m"
    printf '%s\n' "$m" >> "$ird/modules.load"
done
(cd "$ird" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out/initrd.cpio"
log "kernel $kver, initrd with ${#order[@]} modules at $(elapsed) s"

# ---- root file system: ext4 -> qcow2 --------------------------------------
pkglist=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${Version}\n')
rootsize=$(du -sm "$root" | cut -f1)
# Room for what tests write to the disk (the writes go to qemu's throw-away
# snapshot overlay on the host; /tmp is a tmpfs in guest RAM).
mkfs.ext4 -q -F -L hutch-root -O ^has_journal -d "$root" "$tmp/rootfs.ext4" 2G >/dev/null
qemu-img convert -f raw -O qcow2 "$tmp/rootfs.ext4" "$out/rootfs.qcow2"
rm -f "$tmp/rootfs.ext4"
log "root file system at $(elapsed) s"

total=$(elapsed)
{
    echo "recipe: $hash"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
    echo "build-seconds: $total"
    echo "kernel: $kver"
    echo "mirror: $mirror $secmirror"
    echo "rootfs-mb: $rootsize"
    echo "initrd-modules: ${order[*]}"
    (cd "$out" && du -b vmlinux initrd.cpio rootfs.qcow2 | awk '{ print "size: " $2 " " $1 }')
    echo "packages:"
    printf '%s\n' "$pkglist" | sed 's/^/  /'
} > "$out/info.txt"
: > "$out/complete"

# Atomic hand-over: the image directory appears complete or not at all.
if [[ -e "$img" ]]; then
    remove_tree "$img"
fi
mv -T "$out" "$img"
log "built $img in $total s"

# Keep the three most recent images (other recipes, e.g. other branches).
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'img-*' -printf '%T@ %p\n' | sort -rn |
    awk 'NR > 3 { print $2 }' | while read -r d; do
        [[ "$d" == "$img" ]] && continue
        log "pruning old image $d"
        rm -rf --one-file-system "$d"
    done
