#!/usr/bin/env bash
# Installs the Debian packages that the SDK's tests, samples and test-image build use.
# Idempotent: apt-get runs only when something is missing. Uses sudo when not root.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils   # the hypervisor and qemu-img (overlays, conversions)
  openssh-client               # the benchmark's baseline polls with the ssh client
  busybox-static dropbear-bin  # the test images' userland and SSH servers (OpenSSH: ssh-keygen
  libwrap0                     #   from openssh-client; sshd is unpacked and links libwrap)
  kmod cpio                    # depmod and the initrd archive
  xorriso isolinux syslinux syslinux-common mtools fdisk  # iso-bios and raw-bios outputs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
echo "Installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
