#!/usr/bin/env bash
# Cross-builds a stripped vigil-edge for an ARM board:
#
#   edge-agent/build-arm.sh aarch64-unknown-linux-gnu        # 64-bit Raspberry Pi OS etc.
#   edge-agent/build-arm.sh armv7-unknown-linux-gnueabihf    # 32-bit boards (rustc 1.85, see below)
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
# (`apt-cache madison libstd-rust-web-dev`), and the target std must match
# the compiler exactly, while the system compiler used for aarch64 is 1.96.
# Installing rustc-web 1.85 would replace it, so for armv7 this script
# downloads Debian's 1.85 packages (rustc-web, libstd-rust-web-1.85 and
# -dev for amd64 and armhf, libllvm19) with `apt-get download` and unpacks
# them with `dpkg -x` into a private directory (VIGIL_RUST185_DIR, default
# ~/.cache/vigil/rustc-web-1.85), then builds with that rustc and the system
# cargo. Every dependency builds with rustc 1.85 (the workspace's
# rust-version).
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

. scripts/apt.sh

rustc=/usr/bin/rustc
cargo=/usr/bin/cargo
host_version() { "$rustc" --version 2>/dev/null | awk '{print $2}'; }

system_pkgs=(rustc-web cargo-web "gcc-$gnu" "$libc_pkg")
[ "$arch" = arm64 ] && system_pkgs+=("libstd-rust-web-dev:$arch")
dpkg --print-foreign-architectures | grep -qx "$arch" || {
    as_root dpkg --add-architecture "$arch"
    apt_update
}
apt_install "${system_pkgs[@]}"

if [ "$arch" = armhf ]; then
    tc=${VIGIL_RUST185_DIR:-$HOME/.cache/vigil/rustc-web-1.85}
    if [ ! -x "$tc/usr/bin/rustc" ]; then
        version=$(apt-cache madison libstd-rust-web-dev | awk -F'|' '/armhf/ {gsub(/ /, "", $2); print $2}' | grep '^1\.85' | head -1)
        if [ -z "$version" ]; then
            echo "error: Debian offers no libstd-rust-web-dev 1.85 for armhf here:" >&2
            apt-cache madison libstd-rust-web-dev >&2 || true
            exit 1
        fi
        echo "== unpacking Debian's rustc-web $version (amd64 host, armhf std) into $tc" >&2
        debs=$(mktemp -d)
        (cd "$debs" && apt-get download -q "rustc-web=$version" "libstd-rust-web-1.85=$version" \
            "libstd-rust-web-dev=$version" "libstd-rust-web-1.85:armhf=$version" \
            "libstd-rust-web-dev:armhf=$version" libllvm19 2>/dev/null)
        mkdir -p "$tc"
        for deb in "$debs"/*.deb; do dpkg -x "$deb" "$tc"; done
        rm -rf "$debs"
    fi
    export LD_LIBRARY_PATH="$tc/usr/lib/x86_64-linux-gnu:$tc/usr/lib/llvm-19/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    rustc=$tc/usr/bin/rustc
else
    # The std for the target must match the compiler exactly.
    std_version=$(dpkg-query -W -f='${Version}' "libstd-rust-web-dev:$arch" 2>/dev/null | cut -d+ -f1)
    if [ -n "$std_version" ] && [ "$std_version" != "$(host_version)" ]; then
        echo "error: libstd-rust-web-dev:$arch is $std_version but $rustc is $(host_version)" >&2
        exit 1
    fi
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
