#!/bin/sh
# Installs hutch: the one install layout every package recipe uses
# (debian/rules, packaging/rpm/hutch.spec, packaging/arch/PKGBUILD).
#
# usage: packaging/install.sh [--bin PATH] [--list] [NAME=VALUE...]
#
#   --bin PATH   the hutch binary to install (default: what
#                packaging/build-release.sh prints, which builds it if needed)
#   --list       print the installed paths (below DESTDIR), one per line
#
# Locations, as NAME=VALUE arguments or in the environment (defaults shown):
#
#   DESTDIR=                   staging root (packages install into it)
#   PREFIX=/usr/local
#   BINDIR=$PREFIX/bin                 hutch
#   DATADIR=$PREFIX/share
#   PROFILEDIR=$DATADIR/hutch/profiles shipped profiles (hutch also has them
#                                      built in; these are what `hutch
#                                      profiles` lists and admins read)
#   SCHEMADIR=$DATADIR/hutch           hutch-profile.schema.json
#   MANDIR=$DATADIR/man                man1/hutch*.1, man5/hutch-profile.5
#   BASHCOMPDIR=$DATADIR/bash-completion/completions
#   ZSHCOMPDIR=$DATADIR/zsh/site-functions   (Debian: vendor-completions)
#   FISHCOMPDIR=$DATADIR/fish/vendor_completions.d
#   DOCDIR=$DATADIR/doc/hutch          README.md, CHANGELOG.md
#   LICENSEDIR=$DATADIR/licenses/hutch LICENSE-MIT, LICENSE-APACHE
#                                      (empty: not installed; Debian has
#                                      debian/copyright instead)
#   SYSCONFDIR=/etc
#   APPARMORDIR=$SYSCONFDIR/apparmor.d the AppArmor profile (Ubuntu 23.10+
#                                      restricts unprivileged user
#                                      namespaces to programs it names);
#                                      empty: not installed
#
# Man pages are installed uncompressed: the package tools compress them.
set -eu
cd "$(dirname "$0")/.."

bin=
list=no
while [ $# -gt 0 ]; do
  case $1 in
  --bin) bin=${2:?--bin needs a path}; shift ;;
  --bin=*) bin=${1#--bin=} ;;
  --list) list=yes ;;
  *=*)
    name=${1%%=*}
    case $name in
    DESTDIR | PREFIX | BINDIR | DATADIR | PROFILEDIR | SCHEMADIR | MANDIR | BASHCOMPDIR | \
      ZSHCOMPDIR | FISHCOMPDIR | DOCDIR | LICENSEDIR | SYSCONFDIR | APPARMORDIR)
      export "$1" ;;
    *) echo "install.sh: unknown variable $name (see the top of $0)" >&2; exit 2 ;;
    esac ;;
  -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

DESTDIR=${DESTDIR-}
PREFIX=${PREFIX:-/usr/local}
BINDIR=${BINDIR:-$PREFIX/bin}
DATADIR=${DATADIR:-$PREFIX/share}
PROFILEDIR=${PROFILEDIR:-$DATADIR/hutch/profiles}
SCHEMADIR=${SCHEMADIR:-$DATADIR/hutch}
MANDIR=${MANDIR:-$DATADIR/man}
BASHCOMPDIR=${BASHCOMPDIR:-$DATADIR/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-$DATADIR/zsh/site-functions}
FISHCOMPDIR=${FISHCOMPDIR:-$DATADIR/fish/vendor_completions.d}
DOCDIR=${DOCDIR:-$DATADIR/doc/hutch}
LICENSEDIR=${LICENSEDIR-$DATADIR/licenses/hutch}
SYSCONFDIR=${SYSCONFDIR:-/etc}
APPARMORDIR=${APPARMORDIR-$SYSCONFDIR/apparmor.d}

if [ -z "$bin" ] && [ $list = no ]; then
  bin=$(packaging/build-release.sh | tail -n 1)
fi

# put MODE SOURCE DESTINATION: installs one file (or, with --list, names it).
put() {
  if [ $list = yes ]; then
    printf '%s\n' "$3"
  else
    install -D -m "$1" "$2" "$DESTDIR$3"
  fi
}

put 0755 "${bin:-hutch}" "$BINDIR/hutch"
find profiles -name '*.toml' | LC_ALL=C sort | while read -r p; do
  put 0644 "$p" "$PROFILEDIR/${p#profiles/}"
done
put 0644 schema/hutch-profile.schema.json "$SCHEMADIR/hutch-profile.schema.json"
for page in man/*.1 man/*.5; do
  section=${page##*.}
  put 0644 "$page" "$MANDIR/man$section/${page#man/}"
done
put 0644 completions/hutch.bash "$BASHCOMPDIR/hutch"
put 0644 completions/_hutch "$ZSHCOMPDIR/_hutch"
put 0644 completions/hutch.fish "$FISHCOMPDIR/hutch.fish"
put 0644 README.md "$DOCDIR/README.md"
put 0644 CHANGELOG.md "$DOCDIR/CHANGELOG.md"
if [ -n "$LICENSEDIR" ]; then
  put 0644 LICENSE-MIT "$LICENSEDIR/LICENSE-MIT"
  put 0644 LICENSE-APACHE "$LICENSEDIR/LICENSE-APACHE"
fi
if [ -n "$APPARMORDIR" ]; then
  put 0644 packaging/apparmor/hutch "$APPARMORDIR/hutch"
fi
