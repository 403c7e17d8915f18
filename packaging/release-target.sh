# Sourced by build-release.sh and trace-hot-functions.sh: which Rust target
# the shipped hutch is built for, and the flags that make it a static PIE.

# HUTCH_TARGET if set; else the host's musl target when its standard library
# is installed; else the host's own target (glibc).
release_target() {
  if [ -n "${HUTCH_TARGET:-}" ]; then
    echo "$HUTCH_TARGET"
    return
  fi
  local host musl
  host=$(rustc -vV | sed -n 's/^host: //p')
  case "$host" in
    *-linux-gnu)
      musl=${host%-gnu}-musl
      if ls "$(rustc --print target-libdir --target "$musl" 2>/dev/null)"/libstd-*.rlib \
        >/dev/null 2>&1; then
        echo "$musl"
        return
      fi ;;
  esac
  echo "$host"
}

# musl targets link statically (and as a static PIE) by default; glibc needs
# crt-static asked for. Rust links musl targets with the system's ld, whose
# map build-release.sh cannot read and which cannot order functions: use the
# lld that ships with the toolchain, as the glibc target does by default.
release_rustflags() {
  local gcc_ld
  case "$1" in
    *-linux-gnu) echo "-C target-feature=+crt-static" ;;
    *-linux-musl*)
      gcc_ld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/gcc-ld"
      if [ -x "$gcc_ld/ld.lld" ]; then
        echo "-C link-arg=-B$gcc_ld -C link-arg=-fuse-ld=lld"
      fi ;;
  esac
}
