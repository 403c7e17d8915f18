#!/usr/bin/env bash
# Parses packaging/apparmor/hutch with apparmor_parser -Q (no kernel needed),
# and, as a negative control, a copy with an invalid rule, which must fail.
#
# The profile uses AppArmor 4's `userns` rule (abi/4.0), which Ubuntu 23.10+
# needs and which Debian 12's parser (3.0) does not know. When the installed
# parser is older than 4, this script builds apparmor_parser from Debian
# trixie's apparmor source package (fetched with apt from the same mirror,
# into a private list directory: the system's apt sources are not touched)
# and keeps it in $HUTCH_APPARMOR_CACHE (default /var/cache/hutch-apparmor),
# so that later runs on the machine reuse it.
# Build tools: bison flex g++ autoconf automake libtool autoconf-archive
# pkg-config gettext dpkg-dev (.ci/run installs them).
#
# usage: packaging/apparmor/check.sh          exit 0 if both checks pass
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
profile=$here/hutch
cache=${HUTCH_APPARMOR_CACHE:-/var/cache/hutch-apparmor}
suite=trixie

log() { printf 'apparmor-check: %s\n' "$*" >&2; }

major() { "$1" --version 2>/dev/null | sed -n 's/^AppArmor parser version \([0-9]*\).*/\1/p' | head -n 1; }

parser="" base=""
if command -v apparmor_parser >/dev/null && [ "$(major apparmor_parser)" -ge 4 ] 2>/dev/null; then
  parser=$(command -v apparmor_parser)
  base=/etc/apparmor.d
elif [ -x "$cache/current/apparmor_parser" ]; then
  parser=$cache/current/apparmor_parser
  base=$cache/current/apparmor.d
else
  log "apparmor_parser 4 not installed (Debian 12 has 3.0); building it from Debian $suite's source, once"
  mirror=$(sed -n 's#^\(deb\|URIs:\) *\(http[^ ]*\).*#\2#p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v security | head -n 1 || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
  echo "deb-src $mirror $suite main" > "$work/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Get::List-Cleanup=0
    -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" -q update >&2
  (cd "$work/src" && apt-get "${apt_opts[@]}" -q source --download-only apparmor >&2)
  (cd "$work/src" && dpkg-source --no-check -x ./*.dsc tree >&2)
  src=$work/src/tree
  version=$(cd "$src" && dpkg-parsechangelog -S Version)
  log "building apparmor_parser $version"
  (cd "$src/libraries/libapparmor" && sh ./autogen.sh && ./configure --without-perl \
    --without-python --without-ruby --disable-man-pages && make -j"$(nproc)") > "$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; log "libapparmor build failed"; exit 1; }
  make -C "$src/parser" -j"$(nproc)" apparmor_parser >> "$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; log "apparmor_parser build failed"; exit 1; }
  dest=$cache/apparmor-$version
  rm -rf "$dest"
  mkdir -p "$dest"
  cp "$src/parser/apparmor_parser" "$dest/"
  cp -r "$src/profiles/apparmor.d" "$dest/apparmor.d"
  ln -sfn "apparmor-$version" "$cache/current"
  parser=$cache/current/apparmor_parser
  base=$cache/current/apparmor.d
fi
log "$("$parser" --version | head -n 1) with $base"

status=0
# -Q: parse and compile, load nothing; -K: no cache.
if "$parser" -Q -K --base "$base" "$profile" 2> /tmp/apparmor-check.$$; then
  echo "PASS apparmor_parser -Q packaging/apparmor/hutch"
else
  echo "FAIL apparmor_parser -Q packaging/apparmor/hutch: $(grep -v 'Cache read/write disabled' /tmp/apparmor-check.$$)"
  status=1
fi
bad=$(mktemp)
sed 's/^  userns,$/  userns,\n  not_a_rule,/' "$profile" > "$bad"
if "$parser" -Q -K --base "$base" "$bad" 2>/dev/null; then
  echo "FAIL the parser accepted a profile with an invalid rule: the check above proves nothing"
  status=1
else
  echo "PASS the parser rejects the same profile with an invalid rule"
fi
rm -f "$bad" /tmp/apparmor-check.$$
exit $status
