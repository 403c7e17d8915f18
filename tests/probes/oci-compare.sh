# The probe list of tests/oci_runtime.rs: run as `sh -c "$(cat oci-compare.sh)"`
# with the static escape probe (tests/probes/escape.c) on standard input,
# the same way under `hutch run` and under an OCI runtime with the bundle
# `hutch export oci` wrote. Prints one `NAME: RESULT` line per probe; the
# test compares the two outputs line by line. POSIX sh: it runs under
# Debian's dash and busybox's ash alike.
d=$(mktemp -d) || exit 3
cat > "$d/p" && chmod 755 "$d/p" || exit 3

# p NAME ARGS...: the escape probe's answer, or the signal that killed it.
p() {
    name=$1
    shift
    out=$("$d/p" "$@" 2>&1 </dev/null)
    st=$?
    if [ "$st" -gt 128 ]; then out="killed by signal $((st - 128))"; fi
    echo "$name: $out"
}

echo "pid: $$"
echo "hostname: $(cat /proc/sys/kernel/hostname)"
echo "ids: $(id -u):$(id -g)"
echo "cwd: $(pwd)"
sid=$(cut -d' ' -f6 "/proc/$$/stat")
echo "session leader: $([ "$sid" = "$$" ] && echo yes || echo no)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|Speculation_Store_Bypass|SpeculationIndirectBranch):' /proc/self/status |
    sed 's/:[[:space:]]*/: /'
echo "umask: $(umask)"
echo "nofile: $(ulimit -n)"
echo "env: $(env | sort | tr '\n' ' ')"

# Writes: read-only mounts refuse them.
for f in / /usr /etc /tmp /dev /dev/shm "$HOME"; do
    p "write $f" write "$f/.hutch-probe" x
    rm -f "$f/.hutch-probe" 2>/dev/null
done
p "write /proc/sys/kernel/hostname" write /proc/sys/kernel/hostname x
p "write /proc/sysrq-trigger" write /proc/sysrq-trigger x

# A repository in the working directory (tests/oci_runtime.rs makes one):
# base/sensitive keeps its configuration and hooks read-only, even where the
# directory itself is writable.
if [ -d .git ]; then
    p "write .git/config" write .git/config x
    p "write .git/hooks" write .git/hooks/pre-commit x
fi
# Credential stores and startup files in a home a bind shows
# (tests/oci_runtime.rs binds one holding them): base/sensitive hides the
# first and keeps the others read-only.
if [ -e "$HOME/.netrc" ]; then
    echo "read ~/.netrc: $(cat "$HOME/.netrc" 2>&1 | sed 's/.*: //')"
    echo "list ~/.ssh: $(ls "$HOME/.ssh" 2>&1 | sed 's/.*: //' | tr '\n' ' ')"
    p "write ~/.bashrc" write "$HOME/.bashrc" x
fi
# A file named on the command line (tests/oci_runtime.rs passes one from
# outside the working directory): file_arguments binds it alone, read-only.
if [ -n "$1" ]; then
    echo "read argument: $(cat "$1" 2>&1 | sed 's/.*: //')"
    p "write argument" write "$1" x
    echo "sibling: $(cat "$(dirname "$1")/sibling" 2>&1 | sed 's/.*: //')"
fi

# The seccomp filter.
for c in keyctl bpf perf userfaultfd open_by_handle_at mount clone3 userns x32 tiocsti tioclinux; do
    p "$c" "$c"
done
p "tiocsti with high bits" tiocsti hibits

# Masked /proc entries read empty (kernels without CONFIG_PROC_KCORE have
# no /proc/kcore).
for f in kcore keys; do
    if [ -e "/proc/$f" ]; then echo "$f: $(wc -c <"/proc/$f")"; else echo "$f: absent"; fi
done

# The network: a loopback of its own and nothing else.
echo "interfaces: $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
p loopback loopback

# The filesystem.
echo "dev: $(ls /dev | tr '\n' ' ')"
echo "/: $(ls / | tr '\n' ' ')"
echo "motd: $(cat /etc/motd 2>/dev/null | head -n 1 || true)"
echo "data: $(ls /data 2>&1 | tr '\n' ' ')"
# hutch's volume store (XDG_DATA_HOME is $PWD/data in tests/oci_runtime.rs),
# hidden where a bind would show it.
echo "volume store: $(ls "$PWD/data/hutch/volumes" 2>&1 | tr '\n' ' ')"
for m in / /usr /etc /tmp /proc /dev /dev/pts /dev/shm "$HOME"; do
    opts=$(while read -r _ mnt _ o _; do [ "$mnt" = "$m" ] && echo "$o"; done </proc/self/mounts | tail -n 1)
    flags=""
    for o in $(echo "$opts" | tr ',' ' '); do
        case $o in ro | rw | nosuid | nodev | noexec) flags="$flags $o" ;; esac
    done
    echo "mount $m:${flags:- none}"
done
rm -rf "$d"
