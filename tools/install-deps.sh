#!/bin/bash
# Installs the Debian packages hv needs to build and test (and, with --bench, to compare
# against QEMU). Installs only what is missing, so it is quick on a prepared machine.
# qemu-system-x86, busybox-static and cpio: on a host without /dev/kvm, the integration tests
# also run inside a QEMU TCG VM that has one (tests/nested/run.sh).
set -euo pipefail

pkgs=(gcc make libc6-dev libjson-c-dev libcmocka-dev uuid-dev zlib1g-dev libzstd-dev libxxhash-dev clang iproute2
      procps psmisc util-linux xz-utils libclang-rt-14-dev iputils-ping tmux
      libseccomp-dev libssl-dev openssl chromium qemu-system-x86 busybox-static cpio)
[ "${1:-}" = "--bench" ] && pkgs+=(python3)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
