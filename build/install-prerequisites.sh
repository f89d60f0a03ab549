#!/usr/bin/env bash
# Installs the Debian packages that the SDK's tests, samples and test-image build use.
# Idempotent: apt-get runs only when something is missing. Uses sudo when not root.
set -euo pipefail

packages=(
  qemu-system-x86 qemu-utils   # the hypervisor and qemu-img (overlays, conversions)
  qemu-system-arm              # arm64 guests (qemu-system-aarch64, -machine virt)
  ovmf qemu-efi-aarch64        # UEFI firmware for x86_64 and aarch64, with QEMU's descriptors
  openssh-client               # the benchmark's baseline polls with the ssh client
  busybox-static dropbear-bin  # the test images' userland and SSH servers (OpenSSH: ssh-keygen
  libwrap0                     #   from openssh-client; sshd is unpacked and links libwrap)
  kmod cpio                    # depmod and the initrd archive
  xorriso isolinux syslinux syslinux-common mtools fdisk  # iso-bios and raw-bios outputs
  grub-efi-amd64-bin           # iso-efi and qcow2-efi outputs (GRUB as BOOTX64.EFI)
)

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# The arm64 test image is made from Debian's arm64 packages (apt-get download, never installed).
arm64_listed=yes
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "Adding the arm64 package architecture (the arm64 test image's packages)" >&2
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
  arm64_listed=no
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "$arm64_listed" = yes ] || "${sudo_cmd[@]}" apt-get update -qq
  exit 0
fi

echo "Installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
