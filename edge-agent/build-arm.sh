#!/usr/bin/env bash
# Cross-builds a stripped vigil-edge for an ARM board:
#
#   edge-agent/build-arm.sh aarch64-unknown-linux-gnu        # 64-bit Raspberry Pi OS etc.
#   edge-agent/build-arm.sh armv7-unknown-linux-gnueabihf    # 32-bit boards (see below)
#
# Output: target/<triple>/release/vigil-edge (stripped, `edge` profile:
# opt-level s, fat LTO, one codegen unit, panic=abort).
#
# The rustup toolchain on the build machine has no ARM standard library and
# cannot download one, so this uses Debian's rustc-web compiler, whose
# packages include the ARM std (libstd-rust-web-dev:<arch>), with the GNU
# cross linker and C compiler (ring compiles a little C). Missing packages
# are installed with apt-get (needs root or sudo).
#
# armv7: Debian packages the armhf standard library only for rustc-web 1.85
# (`apt-cache madison libstd-rust-web-dev`), while the amd64 compiler
# installed for aarch64 is 1.96; the two must be the same version, so an
# armv7 build needs the whole 1.85 toolchain instead, and dependencies that
# build with rustc 1.85. The script checks this and says what blocks it.
set -euo pipefail
cd "$(dirname "$0")/.."

triple=${1:-}
case "$triple" in
    aarch64-unknown-linux-gnu)
        arch=arm64; gnu=aarch64-linux-gnu; libc_pkg=libc6-dev-arm64-cross ;;
    armv7-unknown-linux-gnueabihf)
        arch=armhf; gnu=arm-linux-gnueabihf; libc_pkg=libc6-dev-armhf-cross ;;
    *)
        echo "usage: $0 aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf" >&2
        exit 2 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

rustc=/usr/bin/rustc
cargo=/usr/bin/cargo
host_version() { "$rustc" --version 2>/dev/null | awk '{print $2}'; }

need=()
for p in rustc-web cargo-web "libstd-rust-web-dev:$arch" "gcc-$gnu" "$libc_pkg"; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "== installing ${need[*]}" >&2
    dpkg --print-foreign-architectures | grep -qx "$arch" || as_root dpkg --add-architecture "$arch"
    as_root apt-get update -qq
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
        if [ "$arch" = armhf ]; then
            echo "error: cannot install ${need[*]}." >&2
            echo "Debian ships the armhf standard library only as libstd-rust-web-dev 1.85:" >&2
            apt-cache madison libstd-rust-web-dev 2>/dev/null | grep -E 'armhf|Sources' >&2 || true
            echo "and the installed host compiler is rustc $(host_version); the host compiler and the" >&2
            echo "target std must be the same version, so an armv7 build needs rustc-web 1.85 for" >&2
            echo "the host as well (it replaces the 1.96 used for aarch64)." >&2
        fi
        exit 1
    fi
fi

# The std for the target must match the compiler exactly.
std_version=$(dpkg-query -W -f='${Version}' "libstd-rust-web-dev:$arch" 2>/dev/null | cut -d+ -f1)
if [ -n "$std_version" ] && [ "$std_version" != "$(host_version)" ]; then
    echo "error: libstd-rust-web-dev:$arch is $std_version but $rustc is $(host_version)" >&2
    exit 1
fi

target_dir=${VIGIL_ARM_TARGET_DIR:-target/arm-build}
upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
export RUSTC=$rustc
export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
export "CC_${triple//-/_}=$gnu-gcc"
export "AR_${triple//-/_}=$gnu-ar"
export CARGO_TARGET_DIR=$target_dir

echo "== building vigil-edge for $triple with rustc $(host_version)" >&2
"$cargo" build --locked --profile edge --target "$triple" -p vigil-edge --bin vigil-edge

out=target/$triple/release
mkdir -p "$out"
cp "$target_dir/$triple/edge/vigil-edge" "$out/vigil-edge"
"$gnu-strip" "$out/vigil-edge" 2>/dev/null || true
size=$(stat -c %s "$out/vigil-edge")
echo "$out/vigil-edge: $size bytes ($(file -b "$out/vigil-edge" 2>/dev/null | cut -d, -f1-2))"
