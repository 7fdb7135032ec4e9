#!/bin/bash
# Fetches Debian's stock kernel package once into $BUILD/linux/ and extracts the bzImage
# (vmlinuz) and the PVH ELF inside it (vmlinux). Prints the directory.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$PWD/$BUILD/linux
if [ ! -f "$dir/vmlinux" ] || [ ! -f "$dir/vmlinuz" ]; then
	mkdir -p "$dir/deb"
	cd "$dir/deb"
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$pkg" ] || { apt-get update -qq >/dev/null && pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
	apt-get download -qq "$pkg" >/dev/null 2>&1
	dpkg-deb -x ./*.deb x
	cp x/boot/vmlinuz-* "$dir/vmlinuz"
	# The bzImage payload is xz: find the stream and unpack the ELF inside it.
	off=$(LC_ALL=C grep -obUaP '\xFD\x37\x7A\x58\x5A\x00' "$dir/vmlinuz" | head -n 1 | cut -d: -f1)
	tail -c +$((off + 1)) "$dir/vmlinuz" | xz -dc >"$dir/vmlinux" 2>/dev/null || true
	rm -rf "$dir/deb"
fi
echo "$dir"
