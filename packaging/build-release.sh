#!/usr/bin/env bash
# Builds hutch the way it should be shipped: optimised, statically linked as a
# position-independent executable (static-pie), with musl when its Rust
# target is installed, else with glibc.
#
# hutch runs in front of every sandboxed command. Loading and relocating a
# dynamically linked Rust binary costs about a quarter of a millisecond per
# launch (measured with bench/run); a static PIE skips the dynamic loader and
# keeps address-space randomisation. musl: glibc's start-up probes the CPU's
# caches and features with ~70 CPUID instructions, which trap to the
# hypervisor in a virtual machine (7.6 us each on the development VM, so
# ~0.5 ms per launch, a fifth of it); musl's start-up does none of that
# (bench/run launch: 2.96 -> 2.61 ms for the cli profile). Install it with
# `rustup target add x86_64-unknown-linux-musl` (or the one for your
# architecture); HUTCH_TARGET=<triple> picks a target explicitly. The
# target must be named explicitly in any case, so that the static flag
# applies to hutch and not to the compiler's own procedural macros.
#
# When the linker is lld (Rust's default on x86_64 Linux), the binary is
# linked twice: the first link writes a map of every function, the second
# places the functions of packaging/hot-functions.txt first. The launcher that
# waits for its sandbox then keeps fewer pages of cold code mapped: the page
# cache hands out whole 64 KiB folios, so one cold function called on the
# launch path maps its neighbours too (measured with bench/run rss, launcher
# and init together: 4000 KiB -> 2748 KiB; bwrap 3612 KiB in the same run).
# Set HUTCH_NO_ORDER=1 to skip the second link.
#
# Prints the path of the built binary on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=packaging/release-target.sh
. packaging/release-target.sh
host=$(release_target)
export RUSTFLAGS="${RUSTFLAGS:-} $(release_rustflags "$host")"
echo "build-release: target $host" >&2
out_dir="target/$host/release"
map="$out_dir/hutch.map"
order="$out_dir/hutch.order"

# Extra arguments after `--` apply to the final link of hutch only, so the
# second pass relinks without rebuilding the dependencies.
link() {
  cargo rustc --release --locked --target "$host" --bin hutch "$@" \
    -- -C "link-arg=-Wl,-Map=$PWD/$map" -C link-arg=-Wl,--no-demangle "${extra[@]}" >&2
}
extra=()

# Every symbol the map names (one per function section for Rust code),
# demangled and stripped of hashes so that the list survives rebuilds; the
# functions of packaging/hot-functions.txt among them, in its order.
write_order() {
  awk 'NF == 5 && $5 !~ /:\(/ && $5 !~ /^\./ { print $5 }' "$map" | sort -u > "$order.names"
  c++filt < "$order.names" | sed -E 's/\[[0-9a-f]{16}\]//g; s/::h[0-9a-f]{16}$//' > "$order.plain"
  paste -d '\t' "$order.plain" "$order.names" \
    | awk -F '\t' '
        NR == FNR { if ($0 !~ /^#/ && $0 != "") { want[++n] = $0 } ; next }
        { plain[++m] = $1; mangled[m] = $2 }
        END {
          for (i = 1; i <= n; i++) {
            w = want[i]
            prefix = (substr(w, length(w)) == "*") ? substr(w, 1, length(w) - 1) : ""
            for (j = 1; j <= m; j++) {
              if (done[j]) continue
              if (plain[j] == w || (prefix != "" && index(plain[j], prefix) == 1)) {
                print mangled[j]; done[j] = 1
              }
            }
          }
        }' packaging/hot-functions.txt - > "$order"
  rm -f "$order.names" "$order.plain"
}

ordered=no
can_order=no
if [ "${HUTCH_NO_ORDER:-0}" != 1 ] && command -v c++filt >/dev/null; then
  can_order=yes
fi
# A binary linked with an order before (hutch.order.linked): build with the
# same arguments, which cargo finds up to date when nothing changed (so the
# Debian, RPM and Arch recipes, run one after the other on one target
# directory, compile hutch once), then relink only if the order changed.
if [ "$can_order" = yes ] && [ -s "$order.linked" ] && [ -x "$out_dir/hutch" ]; then
  extra=(-C "link-arg=-Wl,--symbol-ordering-file=$PWD/$order.linked" -C link-arg=-Wl,--no-warn-symbol-ordering)
  link "$@"
  ordered=yes
else
  link "$@"
fi
if [ "$can_order" = yes ] && head -1 "$map" | grep -q '^ *VMA '; then
  write_order
  if [ -s "$order" ] && ! cmp -s "$order" "$order.linked"; then
    cp "$order" "$order.linked"
    extra=(-C "link-arg=-Wl,--symbol-ordering-file=$PWD/$order.linked" -C link-arg=-Wl,--no-warn-symbol-ordering)
    # cargo does not see a change in the linker arguments as a reason to
    # relink; touching the binary's source makes it.
    touch src/main.rs
    link "$@"
    ordered=yes
  fi
else
  ordered=no
fi
[ "$ordered" = yes ] || echo "build-release: functions not reordered (needs lld and c++filt)" >&2
echo "$PWD/$out_dir/hutch"
