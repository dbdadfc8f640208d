#!/usr/bin/env bash
# CI for the edge package: packages the aarch64 binary edge-agent/ci-arm.sh
# built (edge-agent/build-deb.sh; a full cross-build when it is missing),
# checks the .deb (edge-agent/check-deb.sh: contents, conffile, unit,
# lintian, the packaged binary under qemu with the packaged config and a
# real verify key), scores a sample file with the packaged binary under
# qemu, and shows that the check fails on packages with a defect seeded in.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
triple=aarch64-unknown-linux-gnu

. scripts/apt.sh
apt_install lintian qemu-user-static

target_dir=${VIGIL_ARM_TARGET_DIR:-target/arm-build}
if [ -x "$target_dir/$triple/edge/vigil-edge" ]; then
    export VIGIL_DEB_SKIP_BUILD=1
fi
deb=$(edge-agent/build-deb.sh "$triple" | tail -1)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo run -q -p vigil-edge --example edge_fixture -- "$work/fixture" >/dev/null
edge-agent/check-deb.sh "$deb" "$work/fixture/keys/verify.pub"

# The packaged binary scores under qemu.
dpkg-deb -x "$deb" "$work/root"
verdicts=$(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$work/root/usr/bin/vigil-edge" score \
    --scored-ts-from-event --model "$work/fixture/release.json" \
    --verify-key "$work/fixture/keys/verify.pub" --log warn < "$work/fixture/samples.jsonl" | wc -l)
samples=$(wc -l < "$work/fixture/samples.jsonl")
[ "$verdicts" -eq "$samples" ] || { echo "FAIL: the packaged binary wrote $verdicts verdicts for $samples samples" >&2; exit 1; }
echo "packaged binary under qemu: $verdicts verdicts for $samples samples"

# Seeded defects: each repacked package must fail the check, with the
# expected reason.
seeded() {
    local name=$1 expect=$2 edit=$3 dir=$work/seed-$1
    dpkg-deb -R "$deb" "$dir"
    (cd "$dir" && eval "$edit")
    dpkg-deb -b --root-owner-group "$dir" "$work/$name.deb" >/dev/null
    local out
    if out=$(VIGIL_CHECK_DEB_LINTIAN=0 edge-agent/check-deb.sh "$work/$name.deb" 2>&1); then
        echo "FAIL: check-deb.sh passed a package with $name" >&2; exit 1
    fi
    grep -q "$expect" <<<"$out" || { echo "FAIL: check-deb.sh refused $name for another reason: $out" >&2; exit 1; }
    echo "seeded defect '$name': refused ($expect)"
}
seeded no-unit "no /usr/lib/systemd/system/vigil-edge.service" 'rm usr/lib/systemd/system/vigil-edge.service'
seeded not-conffile "is not a conffile" ': > DEBIAN/conffiles'
seeded wrong-arch "is not a ARM aarch64 binary" 'cp /bin/true usr/bin/vigil-edge'
seeded no-user "does not create the vigil-edge user" "sed -i '/adduser/d' DEBIAN/postinst"
seeded unhardened "the unit lacks ProtectSystem=strict" "sed -i '/^ProtectSystem=/d' usr/lib/systemd/system/vigil-edge.service"
echo "edge package: $deb checked; 5 seeded defects refused"
