#!/usr/bin/env bash
# Builds hutch the way it should be shipped: optimised and, with glibc,
# statically linked as a position-independent executable (static-pie).
#
# hutch runs in front of every sandboxed command. Loading and relocating a
# dynamically linked Rust binary costs about a quarter of a millisecond per
# launch (measured with bench/run); a static PIE skips the dynamic loader and
# keeps address-space randomisation. The target must be named explicitly so
# that the static flag applies to hutch and not to the compiler's own
# procedural macros.
#
# Prints the path of the built binary on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
  *-linux-gnu) flags="-C target-feature=+crt-static" ;;
  *) flags="" ;;
esac
RUSTFLAGS="${RUSTFLAGS:-} $flags" cargo build --release --locked --target "$host" "$@" >&2
echo "$PWD/target/$host/release/hutch"
