#!/usr/bin/env bash
# Checks a vigil-edge .deb before it is flashed: control fields, contents,
# conffile, maintainer scripts, the unit's hardening, lintian (errors and
# warnings fail; VIGIL_CHECK_DEB_LINTIAN=0 skips it), and, with qemu-user, that the packaged binary runs with
# the packaged configuration.
#
#   edge-agent/check-deb.sh target/debian/vigil-edge_0.1.0-1_arm64.deb [VERIFY_KEY]
#
# Exits non-zero with one "FAIL:" line per problem. CI runs it on the
# package it builds, and on copies with a defect seeded in (no unit, the
# config not a conffile, a binary of the wrong architecture), which must
# fail (edge-agent/ci-deb.sh).
set -euo pipefail

deb=${1:?usage: $0 PACKAGE.deb}
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

arch=$(dpkg-deb -f "$deb" Architecture)
case "$arch" in
    arm64) elf_machine='ARM aarch64'; qemu=(qemu-aarch64-static -L /usr/aarch64-linux-gnu) ;;
    armhf) elf_machine='ARM, EABI5'; qemu=(qemu-arm-static -L /usr/arm-linux-gnueabihf) ;;
    amd64) elf_machine='x86-64'; qemu=() ;;
    *) fail "unexpected architecture $arch"; elf_machine=none; qemu=() ;;
esac
[ "$(dpkg-deb -f "$deb" Package)" = vigil-edge ] || fail "package name is not vigil-edge"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libc6 adduser; do
    grep -qw "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done

root=$(mktemp -d)
ctrl=$(mktemp -d)
trap 'rm -rf "$root" "$ctrl"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$ctrl"

bin=$root/usr/bin/vigil-edge
unit=$root/usr/lib/systemd/system/vigil-edge.service
conf=$root/etc/vigil/vigil-edge.toml
[ -x "$bin" ] || fail "no executable /usr/bin/vigil-edge"
[ -f "$bin" ] && { file -b "$bin" | grep -q "$elf_machine" || fail "/usr/bin/vigil-edge is not a $elf_machine binary: $(file -b "$bin")"; }
[ -f "$unit" ] || fail "no /usr/lib/systemd/system/vigil-edge.service"
[ -f "$conf" ] || fail "no /etc/vigil/vigil-edge.toml"
grep -qx /etc/vigil/vigil-edge.toml "$ctrl/conffiles" 2>/dev/null || fail "/etc/vigil/vigil-edge.toml is not a conffile"
[ -f "$root/usr/share/man/man1/vigil-edge.1.gz" ] || fail "no manual page"
{ grep -q 'adduser' "$ctrl/postinst" && grep -q 'getent passwd vigil-edge' "$ctrl/postinst"; } 2>/dev/null || fail "postinst does not create the vigil-edge user"

if [ -f "$unit" ]; then
    for setting in 'User=vigil-edge' 'StateDirectory=vigil-edge' 'Restart=on-failure' \
        'ExecStart=/usr/bin/vigil-edge run' 'Environment=VIGIL_EDGE_CONFIG=/etc/vigil/vigil-edge.toml' \
        'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' \
        'CapabilityBoundingSet=' 'WantedBy=multi-user.target'; do
        grep -qx "$setting" "$unit" || fail "the unit lacks $setting"
    done
    if command -v systemd-analyze >/dev/null 2>&1; then
        # Syntax and settings as this machine's systemd reads them (binary
        # paths are not checked: the package is not installed here).
        out=$(systemd-analyze verify --man=no "$unit" 2>&1 | grep -v 'Command .* is not executable\|not executable: No such file\|Failed to prepare filename' || true)
        [ -z "$out" ] || fail "systemd-analyze verify: $out"
    fi
fi

if [ -f "$conf" ]; then
    for key in mqtt_url mqtt_credentials_file device_id verify_key state_dir; do
        grep -q "^#\? \?$key = " "$conf" || fail "the config does not document $key"
    done
fi

if [ "${VIGIL_CHECK_DEB_LINTIAN:-1}" = 1 ] && command -v lintian >/dev/null 2>&1; then
    # Errors and warnings fail; informational tags are printed.
    tags=$(lintian --allow-root -I "$deb" 2>&1) || [ $? -eq 1 ] || fail "lintian did not run: $tags"
    [ -z "$tags" ] || echo "$tags" >&2
    grep -q '^[EW]: ' <<<"$tags" && fail "lintian reports errors or warnings"
fi

if [ -x "$bin" ] && [ -f "$conf" ]; then
    version=$("${qemu[@]}" "$bin" --version 2>&1) || fail "the packaged binary does not run: $version"
    grep -q "^vigil-edge $(dpkg-deb -f "$deb" Version | cut -d- -f1)" <<<"$version" \
        || fail "vigil-edge --version says '$version', the package is $(dpkg-deb -f "$deb" Version)"
    # The packaged config parses and, given a verify key (second
    # argument), passes the agent's self-test; the broker is pointed at a
    # closed loopback port and the state at a temporary directory.
    check=("${qemu[@]}" "$bin" --config "$conf" --state-dir "$root/state" --mqtt-url mqtt://127.0.0.1:9)
    if [ -n "${2:-}" ]; then
        out=$("${check[@]}" --verify-key "$2" --check 2>&1) || fail "vigil-edge --check with the packaged config failed: $out"
    else
        out=$("${check[@]}" --check 2>&1 || true)
    fi
    grep -q '^ok *config' <<<"$out" || fail "the packaged config does not load: $out"
fi

if [ "$fails" -gt 0 ]; then
    echo "check-deb: $deb: $fails problem(s)" >&2
    exit 1
fi
echo "check-deb: $deb ($arch, $(stat -c %s "$deb") bytes): contents, conffile, unit, lintian and the binary under qemu are fine"
