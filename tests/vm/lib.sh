# shellcheck shell=bash
# Shared helpers for the hutch VM test harness.  Sourced, not executed.
#
# The image cache lives in ${HUTCH_VM_CACHE:-tests/vm/cache}.  Every image is
# stored in img-<hash>/ where <hash> covers the whole recipe: build-image.sh,
# this file and everything under image/.  Changing any of them selects a new
# directory, so a changed recipe is rebuilt and an unchanged one is reused.

HUTCH_VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

hutch_vm_cache() {
    printf '%s\n' "${HUTCH_VM_CACHE:-$HUTCH_VM_DIR/cache}"
}

# The recipe files, relative to tests/vm, one per line, sorted.
hutch_vm_recipe_files() {
    (cd "$HUTCH_VM_DIR" && { printf '%s\n' build-image.sh lib.sh; find image -type f; } | LC_ALL=C sort)
}

# 16 hex digits naming the recipe (names, executable bits and contents of its files).
hutch_vm_recipe_hash() {
    local f
    hutch_vm_recipe_files | while IFS= read -r f; do
        if [[ -x "$HUTCH_VM_DIR/$f" ]]; then printf '%s x\n' "$f"; else printf '%s -\n' "$f"; fi
        sha256sum < "$HUTCH_VM_DIR/$f"
    done | sha256sum | cut -c1-16
}

hutch_vm_image_dir() {
    printf '%s/img-%s\n' "$(hutch_vm_cache)" "$(hutch_vm_recipe_hash)"
}

# True when DIR holds a complete image (build-image.sh writes "complete" last,
# before the atomic rename).
hutch_vm_image_ok() {
    local d=$1
    [[ -f "$d/complete" && -s "$d/vmlinux" && -s "$d/initrd.cpio" && -s "$d/rootfs.qcow2" ]]
}

# The Debian mirror the host's apt uses (deb822 first, then sources.list);
# $1 = "main" or "security".  HUTCH_VM_MIRROR / HUTCH_VM_SECURITY_MIRROR override.
hutch_vm_host_mirror() {
    local kind=$1 m="" f
    if [[ $kind == security ]]; then
        m=${HUTCH_VM_SECURITY_MIRROR:-}
    else
        m=${HUTCH_VM_MIRROR:-}
    fi
    if [[ -z "$m" ]]; then
        for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
            [[ -r "$f" ]] || continue
            if [[ $kind == security ]]; then
                m=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' "$f")
            else
                m=$(awk '/^URIs:/ && $2 ~ /debian/ && $2 !~ /security/ {print $2; exit}' "$f")
            fi
            [[ -n "$m" ]] && break
        done
    fi
    if [[ -z "$m" && -r /etc/apt/sources.list ]]; then
        m=$(awk -v want="$kind" '$1 == "deb" {
                for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {
                    sec = ($i ~ /security/)
                    if ((want == "security") == sec) { print $i; exit }
                    break
                } }' /etc/apt/sources.list)
    fi
    if [[ -z "$m" ]]; then
        if [[ $kind == security ]]; then m=http://deb.debian.org/debian-security; else m=http://deb.debian.org/debian; fi
    fi
    printf '%s\n' "${m%/}"
}
