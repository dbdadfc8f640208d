#!/usr/bin/env bash
# Builds the Debian package of the edge agent for an ARM board:
#
#   edge-agent/build-deb.sh [aarch64-unknown-linux-gnu]     # → arm64 .deb
#   edge-agent/build-deb.sh armv7-unknown-linux-gnueabihf   # → armhf .deb
#
# Output: target/debian/vigil-edge_<version>-1_<arch>.deb (printed last).
#
# The binary is cross-built by edge-agent/build-arm.sh (Debian's rustc-web,
# `edge` profile); cargo-deb (installed from crates.io when missing) then
# packages it with --no-build from the metadata in edge-agent/Cargo.toml
# ([package.metadata.deb]): /usr/bin/vigil-edge, the hardened unit
# edge-agent/deploy/vigil-edge.service, /etc/vigil/vigil-edge.toml as a
# conffile, the manual page, and edge-agent/debian/post{inst,rm} (the
# system user vigil-edge). Dependencies are worked out from the binary.
#
# VIGIL_DEB_SKIP_BUILD=1 packages the binary already built (CI builds it
# once, in edge-agent/ci-arm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

triple=${1:-aarch64-unknown-linux-gnu}
case "$triple" in
    aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf) ;;
    *) echo "usage: $0 [aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf]" >&2; exit 2 ;;
esac

if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (once; about two minutes)" >&2
    cargo install cargo-deb --locked --version '^3.8'
fi

[ "${VIGIL_DEB_SKIP_BUILD:-}" = 1 ] || edge-agent/build-arm.sh "$triple"

# cargo-deb finds `target/release/…` assets under the target dir, profile
# and triple the binary was built with (build-arm.sh's).
target_dir=${VIGIL_ARM_TARGET_DIR:-target/arm-build}
built=$target_dir/$triple/edge
[ -x "$built/vigil-edge" ] || { echo "error: $built/vigil-edge is missing; run edge-agent/build-arm.sh $triple" >&2; exit 1; }
gzip -9n < edge-agent/debian/vigil-edge.1 > "$built/vigil-edge.1.gz"

mkdir -p target/debian
# The binary is already stripped by the `edge` profile.
deb=$(CARGO_TARGET_DIR=$target_dir cargo deb -p vigil-edge --target "$triple" --profile edge \
    --no-build --no-strip --locked -o target/debian/ | tail -1)
[ -f "$deb" ] || { echo "error: cargo deb made no package (said: $deb)" >&2; exit 1; }
echo "$deb"
