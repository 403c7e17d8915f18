#!/bin/bash
# Runs as root in the Debian 12 guest of tests/vm (see tests/package_vm.rs):
# installs hutch's .deb as an administrator would, uses it as user tester,
# adds a package that ships a profile and an administrator's override, then
# removes and purges everything and compares the file system with before.
# One line per check: `PASS name: detail` or `FAIL name: detail`.
set -u
cd /tmp
failures=0
pass() { printf 'PASS %s: %s\n' "$1" "$2"; }
fail() { printf 'FAIL %s: %s\n' "$1" "$2"; failures=$((failures + 1)); }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then pass "$1" "$3"; else fail "$1" "expected [$2], got [$3]"; fi; }

# As user tester, in a login-like environment of their own, from a project
# directory: `cli` (and the demo profile over it) refuses the home itself as
# the working directory it binds writable.
runuser -u tester -- mkdir -p /home/tester/project
as_tester() {
    (cd /home/tester/project && runuser -u tester -- env -i HOME=/home/tester USER=tester LOGNAME=tester \
        PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR=/run/user/1000 LANG=C.UTF-8 "$@")
}

# Everything a package could leave behind; not what changes by itself
# (apt's and systemd's state, dpkg's backups and locks) nor /home.
snapshot() {
    find /etc /usr /opt /srv /var/lib -xdev \
        \( -path /var/lib/apt -o -path /var/lib/systemd -o -path /var/lib/dpkg/updates \
           -o -path /var/lib/dpkg/triggers -o -name '*-old' -o -name 'lock*' \) -prune -o -print |
        LC_ALL=C sort
}

# The image keeps man pages, docs and bash completions out (mmdebstrap's
# dpkg path-exclude options, to stay small); a Debian system installs them.
for f in /etc/dpkg/dpkg.cfg.d/*; do
    grep -q path-exclude "$f" 2>/dev/null && mv "$f" /root/
done

snapshot > /tmp/before
deb=$(ls /mnt/host/hutch_*.deb)

# ---- install --------------------------------------------------------------
if out=$(dpkg -i "$deb" 2>&1); then pass install "dpkg -i $(basename "$deb")"; else fail install "$out"; fi
check status "install ok installed" "$(dpkg-query -W -f '${Status}' hutch 2>&1)"
missing=""
for f in /usr/bin/hutch /usr/share/hutch/profiles/cli.toml /usr/share/hutch/hutch-profile.schema.json \
    /usr/share/man/man1/hutch.1.gz /usr/share/man/man5/hutch-profile.5.gz \
    /usr/share/bash-completion/completions/hutch /usr/share/zsh/vendor-completions/_hutch \
    /usr/share/fish/vendor_completions.d/hutch.fish /etc/apparmor.d/hutch /usr/share/doc/hutch/copyright; do
    [ -e "$f" ] || missing="$missing $f"
done
check files "" "$missing"
check conffile "/etc/apparmor.d/hutch" "$(dpkg-query -W -f '${Conffiles}' hutch | awk 'NF { print $1 }')"

# ---- use, as an ordinary user ---------------------------------------------
doctor=$(as_tester hutch doctor 2>&1)
rc=$?
if [ $rc -eq 0 ]; then pass doctor "hutch doctor exits 0"; else fail doctor "exit $rc: $doctor"; fi
echo "$doctor" | sed 's/^/    doctor: /'
# stdout only: hutch warns on stderr about what this kernel cannot enforce.
check run "ok" "$(as_tester hutch run --profile cli -- sh -c 'echo ok')"
check shipped "cli /usr/share/hutch/profiles/cli.toml" \
    "$(as_tester hutch profiles | awk '$1 == "cli" { print $1, $2; exit }')"

# ---- a package that ships a profile ----------------------------------------
mkdir -p /tmp/demo/DEBIAN /tmp/demo/usr/share/hutch/profiles
cat > /tmp/demo/DEBIAN/control <<'CONTROL'
Package: hutch-profile-demo
Version: 1.0
Architecture: all
Maintainer: hutch test <root@localhost>
Depends: hutch
Description: a profile for hutch, shipped by a package
 Installs /usr/share/hutch/profiles/demo.toml.
CONTROL
printf 'version = 1\ndescription = "shipped by a package"\nextends = ["cli"]\nhostname = "demo-box"\n' \
    > /tmp/demo/usr/share/hutch/profiles/demo.toml
dpkg-deb --root-owner-group --build /tmp/demo /tmp/hutch-profile-demo.deb > /dev/null
if out=$(dpkg -i /tmp/hutch-profile-demo.deb 2>&1); then pass demo-install "dpkg -i hutch-profile-demo.deb"; else fail demo-install "$out"; fi
check demo-listed "demo /usr/share/hutch/profiles/demo.toml" \
    "$(as_tester hutch profiles | awk '$1 == "demo" { print $1, $2; exit }')"
check demo-run "demo-box" "$(as_tester hutch run --profile demo -- hostname)"

# ---- an administrator's override -------------------------------------------
mkdir -p /etc/hutch/profiles
printf 'version = 1\nhostname = "admin-box"\n' > /etc/hutch/profiles/demo.local.toml
check override-run "admin-box" "$(as_tester hutch run --profile demo -- hostname)"
check override-check "demo: ok (/usr/share/hutch/profiles/base/system.toml ← /usr/share/hutch/profiles/base/sensitive.toml ← /usr/share/hutch/profiles/cli.toml ← /usr/share/hutch/profiles/demo.toml ← /etc/hutch/profiles/demo.local.toml (override))" \
    "$(as_tester hutch check demo 2>&1)"
# The administrator's file is theirs: they remove it, not the packages.
rm /etc/hutch/profiles/demo.local.toml
rmdir /etc/hutch/profiles /etc/hutch

# ---- remove, then purge ---------------------------------------------------
if out=$(apt-get remove -y -q hutch-profile-demo hutch 2>&1); then pass remove "apt-get remove"; else fail remove "$out"; fi
check removed-status "deinstall ok config-files" "$(dpkg-query -W -f '${Status}' hutch 2>&1)"
snapshot > /tmp/removed
left=$(comm -13 /tmp/before /tmp/removed | tr '\n' ' ')
# The conffile, the empty local include dh_apparmor's postinst creates for
# the administrator, and what dpkg keeps to purge them later.
check remove-keeps-conffiles "/etc/apparmor.d /etc/apparmor.d/hutch /etc/apparmor.d/local /etc/apparmor.d/local/hutch /var/lib/dpkg/info/hutch.list /var/lib/dpkg/info/hutch.postrm " "$left"
if out=$(apt-get purge -y -q hutch 2>&1); then pass purge "apt-get purge"; else fail purge "$out"; fi
snapshot > /tmp/purged
check purge-leaves-nothing "" "$(diff /tmp/before /tmp/purged | tr '\n' ' ')"
check purged-status "" "$(dpkg-query -W -f '${Status}' hutch 2>/dev/null)"

echo "DONE failures=$failures"
[ $failures -eq 0 ]
