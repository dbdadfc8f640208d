# Sourced by the set-up scripts: installs Debian packages that are missing.
#
#   apt_install PACKAGE...
#
# Skips the packages already installed. `apt-get update` is tried three
# times and its failure is not fatal: a mirror in the middle of a sync
# often fails one index (say a foreign architecture's) while the ones the
# install needs are fine, and the install itself says clearly when they
# are not.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_update() {
    local attempt
    for attempt in 1 2 3; do
        as_root apt-get update -qq && return 0
        echo "apt-get update failed (attempt $attempt of 3)" >&2
        [ "$attempt" -lt 3 ] && sleep $((attempt * 10))
    done
    echo "apt-get update kept failing; installing from the indexes there are" >&2
    return 0
}

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "== installing ${missing[*]}" >&2
    apt_update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}
