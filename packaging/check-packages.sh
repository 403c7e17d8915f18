#!/usr/bin/env bash
# Builds hutch's Debian, RPM and Arch packages from this checkout and checks
# them: each holds exactly what packaging/install.sh installs for its
# layout (plus what the distribution's tools add), declares what it should,
# and the Debian one is lintian-clean. CI runs it as root on Debian 12 (see
# .ci/run); tests/package_vm.rs installs the .deb in a clean Debian guest.
#
# usage: packaging/check-packages.sh [--deb-only]
#
# The release binary is built once, by packaging/build-release.sh; each
# recipe runs that same build, which finds it up to date (one target/
# directory, the same arguments), so hutch is compiled once, not three times.
# Tools: dpkg-buildpackage (dpkg-dev, debhelper, dh-apparmor), lintian,
# rpmbuild (rpm), makepkg (makepkg, fakeroot, libarchive-tools), setpriv,
# and what packaging/apparmor/check.sh needs.
# A missing tool is an error, not a skip: .ci/run installs them.
#
# Output: the packages in target/packages/, one line per check, and the time
# each step took. Exit status 0 if every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
out=$repo/target/packages
deb_only=no
[ "${1:-}" = --deb-only ] && deb_only=yes

failures=0
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; failures=$((failures + 1)); }
step() { printf '== %s\n' "$*"; t0=$SECONDS; }
took() { printf '   (%s: %d s)\n' "$1" $((SECONDS - t0)); }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rm -rf "$out"
mkdir -p "$out"

# expect_files NAME ACTUAL EXPECTED: the two sorted lists must be equal.
expect_files() {
  if diff -u "$3" "$2" > "$out/$1.diff"; then
    pass "$1: $(wc -l < "$2") files, as install.sh lays them out"
  else
    fail "$1: the file list differs from install.sh's (- expected, + packaged):"
    sed 's/^/     /' "$out/$1.diff"
  fi
}

step "release binary (packaging/build-release.sh)"
bin=$(packaging/build-release.sh | tail -n 1)
took "release build"

# ---- Debian --------------------------------------------------------------
step "Debian: dpkg-buildpackage -b"
# -d: Build-Depends names rustc (>= 1.89), which bookworm cannot satisfy; the
# build uses the toolchain on PATH (debian/README.source).
if dpkg-buildpackage -b -d -uc -us > "$out/dpkg-buildpackage.log" 2>&1; then
  pass "dpkg-buildpackage -b"
else
  fail "dpkg-buildpackage -b (log: $out/dpkg-buildpackage.log)"
  tail -n 30 "$out/dpkg-buildpackage.log"
fi
mv ../hutch_"$version"-*_*.deb ../hutch_"$version"-*_*.buildinfo ../hutch_"$version"-*_*.changes "$out"/ 2>/dev/null || true
debian/rules clean > /dev/null 2>&1 || true
took "dpkg-buildpackage, the binary already built"
deb=$(ls "$out"/hutch_*.deb 2>/dev/null | head -n 1 || true)
if [ -n "$deb" ]; then
  dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | LC_ALL=C sort > "$out/deb.files"
  # What install.sh lays out for debian/rules; dh_compress gzips the pages
  # and README, dh_installchangelogs turns CHANGELOG.md into changelog.gz and
  # adds changelog.Debian.gz; debian/copyright replaces the license files.
  packaging/install.sh --list PREFIX=/usr ZSHCOMPDIR=/usr/share/zsh/vendor-completions LICENSEDIR= |
    sed -E 's#^(/usr/share/man/.*)$#\1.gz#; s#/README\.md$#/README.md.gz#; s#/CHANGELOG\.md$#/changelog.gz#' > "$out/deb.expected"
  printf '%s\n' /usr/share/doc/hutch/copyright /usr/share/doc/hutch/changelog.Debian.gz \
    /usr/share/lintian/overrides/hutch >> "$out/deb.expected"
  LC_ALL=C sort -o "$out/deb.expected" "$out/deb.expected"
  expect_files deb "$out/deb.files" "$out/deb.expected"
  field() { dpkg-deb -f "$deb" "$1"; }
  for r in passt xdg-dbus-proxy xserver-xephyr; do
    if field Recommends | tr ',' '\n' | grep -qx " *$r *"; then pass "deb: Recommends $r"; else fail "deb: Recommends lacks $r: $(field Recommends)"; fi
  done
  if [ -z "$(field Depends)" ]; then pass "deb: no Depends (a static binary)"; else fail "deb: Depends: $(field Depends)"; fi
  conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
  if [ "$conffiles" = /etc/apparmor.d/hutch ]; then
    pass "deb: /etc/apparmor.d/hutch is its only conffile"
  else
    fail "deb: conffiles: $conffiles"
  fi
  if dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -q apparmor_parser; then
    pass "deb: postinst loads the AppArmor profile (dh_apparmor)"
  else
    fail "deb: postinst does not load the AppArmor profile"
  fi
  step "Debian: lintian"
  # --fail-on: errors and warnings; info tags are listed, not fatal.
  if lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$deb" > "$out/lintian.log" 2>&1; then
    pass "lintian: no errors or warnings"
  else
    fail "lintian:"
    sed 's/^/     /' "$out/lintian.log"
  fi
  took lintian
else
  fail "no .deb was built"
fi
[ $deb_only = yes ] && { [ $failures -eq 0 ]; exit; }

# ---- RPM -----------------------------------------------------------------
step "RPM: rpmbuild -bb --build-in-place"
topdir=$out/rpmbuild
# --nodeps: the BuildRequires (rust, cargo) are not rpm packages here.
if rpmbuild -bb --build-in-place --nodeps --define "_topdir $topdir" packaging/rpm/hutch.spec \
  > "$out/rpmbuild.log" 2>&1; then
  pass "rpmbuild -bb"
else
  fail "rpmbuild -bb (log: $out/rpmbuild.log)"
  tail -n 30 "$out/rpmbuild.log"
fi
rm -f hutch-built-binary
took "rpmbuild, the binary already built"
rpm=$(ls "$topdir"/RPMS/*/hutch-"$version"-*.rpm 2>/dev/null | head -n 1 || true)
if [ -n "$rpm" ]; then
  cp "$rpm" "$out"/
  rpm -qlp "$rpm" | LC_ALL=C sort > "$out/rpm.all"
  # Directories are the filesystem's; %doc and %license add theirs; rpm
  # adds /usr/lib/.build-id links to every ELF file.
  grep -v -e '^/usr/share/doc/' -e '^/usr/share/licenses/' -e '^/usr/lib/\.build-id' "$out/rpm.all" | while read -r f; do
    [ "$f" = /usr/share/hutch ] || [ "$f" = /usr/share/hutch/profiles ] || [ "$f" = /usr/share/hutch/profiles/base ] || echo "$f"
  done | sed -E 's#^(/usr/share/man/.*)\.(gz|xz|bz2|zst)$#\1#' > "$out/rpm.files"
  # What the spec lays out on a distribution without AppArmor (Debian's
  # rpm defines no suse_version); brp-compress compresses the man pages on
  # Fedora and openSUSE, Debian's rpm does not: compared without suffix.
  packaging/install.sh --list PREFIX=/usr LICENSEDIR= APPARMORDIR= |
    grep -v '^/usr/share/doc/' | LC_ALL=C sort > "$out/rpm.expected"
  expect_files rpm "$out/rpm.files" "$out/rpm.expected"
  for f in README.md CHANGELOG.md; do
    if grep -q "^/usr/share/doc/hutch[^/]*/$f$" "$out/rpm.all"; then pass "rpm: %doc $f"; else fail "rpm: no %doc $f"; fi
  done
  for f in LICENSE-MIT LICENSE-APACHE; do
    if grep -q "^/usr/share/licenses/hutch[^/]*/$f$" "$out/rpm.all"; then pass "rpm: %license $f"; else fail "rpm: no %license $f"; fi
  done
  recommends=$(rpm -qp --recommends "$rpm" | sort | tr '\n' ' ')
  if [ "$recommends" = "passt xdg-dbus-proxy xorg-x11-server-Xephyr " ]; then
    pass "rpm: Recommends $recommends"
  else
    fail "rpm: Recommends $recommends"
  fi
  requires=$(rpm -qp --requires "$rpm" | grep -v '^rpmlib(' | tr '\n' ' ')
  if [ "$requires" = "rtld(GNU_HASH) " ]; then
    pass "rpm: requires only rtld(GNU_HASH), which every glibc system provides"
  else
    fail "rpm: Requires $requires"
  fi
else
  fail "no .rpm was built"
fi

# ---- Arch ----------------------------------------------------------------
step "Arch: makepkg as an unprivileged user"
work=$(mktemp -d /tmp/hutch-makepkg.XXXXXX)
git archive --prefix="hutch-$version/" -o "$work/hutch-$version.tar.gz" "$(git stash create 2>/dev/null || true)"  2>/dev/null ||
  git archive --prefix="hutch-$version/" -o "$work/hutch-$version.tar.gz" HEAD
cp packaging/arch/PKGBUILD "$work"/
# The unprivileged user cannot reach root's toolchain (~/.rustup in /root,
# mode 0700): makepkg packages the binary built above (HUTCH_PREBUILT).
install -m 0755 "$bin" "$work/hutch-prebuilt"
chown -R 65534:65534 "$work"
chmod 0755 "$work"
# PACMAN=true: with --nodeps makepkg never calls pacman, but looks for it.
if (cd "$work" && setpriv --reuid=65534 --regid=65534 --clear-groups \
  env -i HOME="$work" PATH=/usr/bin:/bin LANG=C.UTF-8 PACMAN=true HUTCH_PREBUILT="$work/hutch-prebuilt" \
  makepkg --nodeps --noconfirm > "$work/makepkg.log" 2>&1); then
  pass "makepkg --nodeps, as uid 65534"
else
  fail "makepkg (log below)"
  tail -n 30 "$work/makepkg.log"
fi
took makepkg
pkg=$(ls "$work"/hutch-"$version"-*.pkg.tar.* 2>/dev/null | head -n 1 || true)
if [ -n "$pkg" ]; then
  cp "$pkg" "$out"/
  bsdtar -xOf "$pkg" .PKGINFO > "$out/PKGINFO"
  bsdtar -tf "$pkg" | grep -v -e '/$' -e '^\.' | sed 's#^#/#' | LC_ALL=C sort > "$out/arch.files"
  packaging/install.sh --list PREFIX=/usr | sed -E 's#^(/usr/share/man/.*)$#\1.gz#' | LC_ALL=C sort > "$out/arch.expected"
  expect_files arch "$out/arch.files" "$out/arch.expected"
  for line in "pkgname = hutch" "pkgver = $version-1" "backup = etc/apparmor.d/hutch" \
    "optdepend = passt: a network of its own for sandboxes" \
    "optdepend = xdg-dbus-proxy: a filtered D-Bus for sandboxes" \
    "optdepend = xorg-server-xephyr: a nested X display for sandboxes"; do
    if grep -qxF "$line" "$out/PKGINFO"; then pass ".PKGINFO: $line"; else fail ".PKGINFO lacks: $line"; fi
  done
  if grep -q '^depend = ' "$out/PKGINFO"; then fail ".PKGINFO: depends on $(grep '^depend = ' "$out/PKGINFO")"; else pass ".PKGINFO: no depends (a static binary)"; fi
else
  fail "no Arch package was built"
fi
rm -rf "$work"

step "AppArmor: apparmor_parser -Q"
if packaging/apparmor/check.sh > "$out/apparmor.log" 2>&1; then
  grep '^PASS' "$out/apparmor.log"
else
  fail "packaging/apparmor/check.sh:"
  sed 's/^/     /' "$out/apparmor.log"
fi
took "AppArmor check"

printf 'check-packages: %d failure(s)\n' "$failures"
[ $failures -eq 0 ]
