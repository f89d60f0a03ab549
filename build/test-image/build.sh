#!/usr/bin/env bash
# Builds the SDK's test images offline, from Debian packages, with LinuxKit's output names:
#   NAME-kernel, NAME-initrd.img, NAME-cmdline   kernel+initrd
#   NAME.iso                                     iso-bios (isolinux)
#   NAME-bios.img                                raw-bios (syslinux on a FAT16 partition)
#   NAME.qcow2                                   qcow2-bios
#   NAME.vmdk                                    vmdk
#   NAME-efi.iso, NAME-efi.qcow2                 iso-efi, qcow2-efi (GRUB standalone as BOOTX64.EFI;
#                                                an EFI entry / an EFI System Partition only)
# The images share one busybox userland (rootfs/) that follows LinuxKit's metadata convention:
# the "config" file of a metadata CD-ROM becomes /run/config, and root's SSH keys come from
# /run/config/ssh/authorized_keys. A flavour folder adds the SSH server:
#   linuxkit-ssh     dropbear/, Debian's cloud kernel (LZ4: boots in ~4 s under TCG), every
#                    format above.
#   linuxkit-ssh-arm64
#                    dropbear/ from Debian's arm64 packages, the arm64 cloud kernel, kernel+initrd
#                    (console=ttyAMA0, as `linuxkit build -arch arm64` writes it).
#   linuxkit-ssh-9p  dropbear/, Debian's generic kernel, kernel+initrd only. The cloud kernel
#                    has no 9p, so volumes need this one; its XZ kernel costs ~3 s more.
#   linuxkit-sshd    openssh/, the cloud kernel, kernel+initrd: like LinuxKit's sshd example,
#                    OpenSSH's sshd (a process forked per connection), host keys made at boot
#                    with ssh-keygen -A, and no ACPI handler.
#   linuxkit-ssh-baked, linuxkit-sshd-baked
#                    the two above with root's key baked into the image (the public half of
#                    baked-key, made here) and no metadata read, as LinuxKit's sshd example
#                    bakes it: only a caller who passes baked-key as the SSH key logs in.
#   linuxkit-ssh-user, linuxkit-sshd-user
#                    the two above logging in as "user" (uid 1000) only, key from the metadata.
#   linuxkit-ssh-noexec, linuxkit-sshd-noexec
#                    the two above with /tmp mounted noexec.
#   linuxkit-ssh-cidata, linuxkit-sshd-cidata
#                    the two above taking the key as cloud-init's NoCloud datasource does (the
#                    disk labelled cidata: meta-data's public-keys, a #cloud-config user-data's
#                    ssh_authorized_keys), LinuxKit's metadata not read.
# Each variant is the same kernel and command line, and its initrd with one more archive
# appended (the kernel unpacks each in turn) that adds /etc/linuxkit-test files rcS reads.
# The real `linuxkit build` needs Docker and a registry, which the SDK's CI does not have.
#
# Usage: build.sh [OUTPUT-DIR]   (default: <repo>/.cache/images). Prints the main image prefix.
# Rebuilds only when this script, the guest files or the Debian package versions change.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/.cache/images}

"$repo/build/install-prerequisites.sh"

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
resolve() { # meta-package -> "package version" of the kernel it currently depends on
  local pkg
  pkg=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  if [ -z "$pkg" ]; then
    "${sudo_cmd[@]}" apt-get update -qq >&2   # a machine that never fetched the package lists
    pkg=$(apt-cache depends "$1" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  fi
  if [ -z "$pkg" ]; then
    echo "build.sh: apt-cache cannot resolve $1 (is this Debian with its main archive configured?)" >&2
    exit 1
  fi
  echo "$pkg $(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')"
}
cloud_kernel=$(resolve linux-image-cloud-amd64)
generic_kernel=$(resolve linux-image-amd64)
arm64_kernel=$(resolve linux-image-cloud-arm64:arm64)
openssh_server="openssh-server $(apt-cache policy openssh-server | awk '/Candidate:/ {print $2}')"

inputs_hash=$( {
  cat "$0"
  (cd "$here" && find rootfs dropbear openssh -type f | LC_ALL=C sort | xargs sha256sum)
  echo "$cloud_kernel $generic_kernel $arm64_kernel $openssh_server"
  dpkg-query -W busybox-static dropbear-bin openssh-client isolinux syslinux-common grub-efi-amd64-bin
  apt-cache policy dropbear-bin:arm64 busybox-static:arm64 | grep Candidate
} | sha256sum | cut -c1-16)

if [ -f "$out/.inputs" ] && [ "$(cat "$out/.inputs")" = "$inputs_hash" ]; then
  echo "$out/linuxkit-ssh"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out/.inputs" "$out"/linuxkit-ssh* "$out"/baked-key*
echo "Building the test images in $out" >&2

# The guest's modules: modprobe in rcS resolves their order through modules.dep.
modules="virtio_pci virtio_net virtio_blk virtio_scsi sr_mod isofs button evdev"

# copy_binary ROOT FILE [AS]: a binary and the libraries it links, into ROOT (at AS, else FILE)
copy_binary() {
  local root=$1 bin=$2 as=${3:-$2} lib
  mkdir -p "$root$(dirname "$as")"
  cp "$bin" "$root$as"
  for lib in $(ldd "$bin" | awk '/=>/ {print $3} $1 ~ /^\// {print $1}'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# arm64_packages: Debian's arm64 busybox, dropbear and the libraries dropbear links, unpacked
# into $work/arm64 (ldd cannot read an arm64 binary on this host, so the libraries are named).
arm64_packages() {
  local deb=$work/arm64-debs
  [ -d "$work/arm64" ] && return
  mkdir -p "$deb"
  (cd "$deb" && apt-get download -q busybox-static:arm64 dropbear-bin:arm64 libc6:arm64 libcrypt1:arm64 \
      libtomcrypt1:arm64 libtommath1:arm64 libgmp10:arm64 zlib1g:arm64 >/dev/null 2>&1) || {
    echo "build.sh: apt-get download of the arm64 packages failed (dpkg --add-architecture arm64; apt-get update)" >&2; exit 1; }
  for f in "$deb"/*.deb; do dpkg -x "$f" "$work/arm64"; done
}

build_userland() { # FLAVOUR (dropbear|openssh|dropbear-arm64) -> $work/userland-FLAVOUR
  local flavour=$1 root=$work/userland-$1 applet lib
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,run,tmp,root,media,etc}
  chmod 1777 "$root/tmp"; chmod 700 "$root/root"
  if [ "$flavour" = dropbear-arm64 ]; then
    arm64_packages
    cp "$work/arm64/bin/busybox" "$root/bin/busybox"
  else
    cp /bin/busybox "$root/bin/busybox"
  fi
  # The host's busybox is the same Debian build: its applet list is the guest's.
  for applet in $(/bin/busybox --list-full); do
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
  ln -sf /bin/busybox "$root/init"
  case $flavour in
    dropbear-arm64)
      mkdir -p "$root/etc/dropbear" "$root/lib/aarch64-linux-gnu"
      cp "$work/arm64/usr/sbin/dropbear" "$root/usr/sbin/"
      cp "$work/arm64/usr/bin/dropbearkey" "$root/usr/bin/"
      cp -L "$work/arm64/lib/ld-linux-aarch64.so.1" "$root/lib/"
      for lib in libc.so.6 libcrypt.so.1 libz.so.1; do cp -L "$work/arm64/lib/aarch64-linux-gnu/$lib" "$root/lib/aarch64-linux-gnu/"; done
      for lib in libtomcrypt.so.1 libtommath.so.1 libgmp.so.10; do cp -L "$work/arm64/usr/lib/aarch64-linux-gnu/$lib" "$root/lib/aarch64-linux-gnu/"; done
      flavour=dropbear ;;
    dropbear)
      mkdir -p "$root/etc/dropbear"
      copy_binary "$root" /usr/sbin/dropbear
      copy_binary "$root" /usr/bin/dropbearkey ;;
    openssh)
      # sshd from its package, unpacked (installing it would start an SSH server on the host);
      # ssh-keygen from the host's openssh-client, the same OpenSSH version.
      local deb=$work/openssh-server
      mkdir -p "$deb"
      (cd "$deb" && apt-get download -q openssh-server >/dev/null 2>&1) || {
        echo "build.sh: apt-get download openssh-server failed" >&2; exit 1; }
      dpkg -x "$deb"/openssh-server_*.deb "$deb/x"
      copy_binary "$root" "$deb/x/usr/sbin/sshd" /usr/sbin/sshd
      copy_binary "$root" /usr/bin/ssh-keygen
      mkdir -p "$root/etc/ssh" "$root/var/empty" ;;
  esac
  cp -r "$here/rootfs/." "$root/"
  cp -r "$here/$flavour/." "$root/"
}

# build_kernel_initrd FLAVOUR PACKAGE VERSION PREFIX MODULES...: NAME-kernel, -initrd.img, -cmdline
build_kernel_initrd() {
  local flavour=$1 pkg=$2 ver=$3 prefix=$4; shift 4
  local k=$work/$pkg root=$work/root-$(basename "$prefix") kver modsrc m f rel dep
  if [ ! -d "$k/x" ]; then
    mkdir -p "$k"
    (cd "$k" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || {
      echo "build.sh: apt-get download $pkg=$ver failed" >&2; exit 1; }
    dpkg -x "$k"/linux-image-*.deb "$k/x"
    depmod -b "$k/x" "$(ls "$k/x/lib/modules")"   # the package ships no modules.dep; its postinst makes it
  fi
  kver=$(ls "$k/x/lib/modules")
  modsrc=$k/x/lib/modules/$kver

  cp -a "$work/userland-$flavour" "$root"
  declare -A seen=()
  local queue=()
  for m in "$@"; do
    f=$(find "$modsrc/kernel" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || { echo "build.sh: module $m is not in $pkg" >&2; exit 1; }
    queue+=("${f#"$modsrc/"}")
  done
  while [ ${#queue[@]} -gt 0 ]; do
    rel=${queue[0]}; queue=("${queue[@]:1}")
    [ -n "${seen[$rel]:-}" ] && continue
    seen[$rel]=1
    mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
    cp "$modsrc/$rel" "$root/lib/modules/$kver/$rel"
    for dep in $(awk -v m="$rel:" '$1 == m { $1 = ""; print }' "$modsrc/modules.dep"); do queue+=("$dep"); done
  done
  cp "$modsrc"/modules.builtin* "$modsrc/modules.order" "$root/lib/modules/$kver/"
  depmod -b "$root" "$kver"

  cp "$k/x/boot/vmlinuz-$kver" "$prefix-kernel"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 > "$prefix-initrd.img"
  # As `linuxkit build -arch arm64` writes it: the virt board's serial port is a PL011.
  case $flavour in
    *-arm64) printf 'console=ttyAMA0 quiet' > "$prefix-cmdline" ;;
    *) printf 'console=ttyS0 quiet' > "$prefix-cmdline" ;;
  esac
}

syslinux_cfg() { # PREFIX -> boot menu that starts the kernel at once
  printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL /kernel\n  APPEND initrd=/initrd.img %s\n' "$(cat "$1-cmdline")"
}

build_iso() { # PREFIX -> PREFIX.iso (iso-bios)
  local prefix=$1 iso=$work/iso
  mkdir -p "$iso/isolinux"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
  cp "$prefix-kernel" "$iso/kernel"
  cp "$prefix-initrd.img" "$iso/initrd.img"
  syslinux_cfg "$prefix" > "$iso/isolinux/isolinux.cfg"
  xorriso -as mkisofs -quiet -o "$prefix.iso" -V LINUXKIT \
    -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
    "$iso" 2>/dev/null
}

build_disks() { # PREFIX -> PREFIX-bios.img (MBR, a bootable FAT16 partition at 1 MiB), .qcow2, .vmdk
  local prefix=$1 raw=$work/disk.img size_mib part
  size_mib=$(( ( $(stat -c %s "$prefix-kernel") + $(stat -c %s "$prefix-initrd.img") ) / 1048576 + 16 ))
  truncate -s "${size_mib}M" "$raw"
  echo 'start=2048, type=e, bootable' | sfdisk -q "$raw"
  part="$raw@@1M"
  mformat -i "$part" -v LINUXKIT ::
  mcopy -i "$part" "$prefix-kernel" ::/kernel
  mcopy -i "$part" "$prefix-initrd.img" ::/initrd.img
  syslinux_cfg "$prefix" > "$work/syslinux.cfg"
  mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux.cfg
  syslinux --offset 1048576 --install "$raw"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none
  mv "$raw" "$prefix-bios.img"
  qemu-img convert -q -f raw -O qcow2 "$prefix-bios.img" "$prefix.qcow2"
  qemu-img convert -q -f raw -O vmdk "$prefix-bios.img" "$prefix.vmdk"
}

# build_efi PREFIX -> PREFIX-efi.iso (iso-efi: an El Torito EFI entry only) and PREFIX-efi.qcow2
# (qcow2-efi: GPT with one EFI System Partition, no BIOS boot code), as LinuxKit names them. GRUB,
# standalone as BOOTX64.EFI, finds the kernel on whatever medium it booted from.
build_efi() {
  local prefix=$1 efi=$work/efi cfg=$work/grub-efi.cfg raw=$work/efi-disk.img size_mib part
  mkdir -p "$efi/iso"
  printf 'set timeout=0\ninsmod part_gpt\ninsmod fat\ninsmod iso9660\nsearch --no-floppy --file /kernel --set=root\nlinux /kernel %s\ninitrd /initrd.img\nboot\n' \
    "$(cat "$prefix-cmdline")" > "$cfg"
  grub-mkstandalone -O x86_64-efi --locales= --fonts= --themes= -o "$efi/BOOTX64.EFI" "boot/grub/grub.cfg=$cfg"

  cp "$prefix-kernel" "$efi/iso/kernel"
  cp "$prefix-initrd.img" "$efi/iso/initrd.img"
  truncate -s 8M "$efi/iso/efiboot.img"
  mformat -i "$efi/iso/efiboot.img" ::
  mmd -i "$efi/iso/efiboot.img" ::/EFI ::/EFI/BOOT
  mcopy -i "$efi/iso/efiboot.img" "$efi/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
  xorriso -as mkisofs -quiet -o "$prefix-efi.iso" -V LINUXKIT -e efiboot.img -no-emul-boot "$efi/iso" 2>/dev/null

  size_mib=$(( ( $(stat -c %s "$prefix-kernel") + $(stat -c %s "$prefix-initrd.img") ) / 1048576 + 24 ))
  truncate -s "${size_mib}M" "$raw"
  printf 'label: gpt\nstart=2048, type=uefi, name=ESP\n' | sfdisk -q "$raw"
  part="$raw@@1M"
  mformat -i "$part" -v ESP ::
  mmd -i "$part" ::/EFI ::/EFI/BOOT
  mcopy -i "$part" "$efi/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$part" "$prefix-kernel" ::/kernel
  mcopy -i "$part" "$prefix-initrd.img" ::/initrd.img
  qemu-img convert -q -f raw -O qcow2 "$raw" "$prefix-efi.qcow2"
  rm -f "$raw"
}

build_userland dropbear
build_userland openssh
build_userland dropbear-arm64
# shellcheck disable=SC2086
build_kernel_initrd dropbear $cloud_kernel "$out/linuxkit-ssh" $modules
build_iso "$out/linuxkit-ssh"
build_disks "$out/linuxkit-ssh"
build_efi "$out/linuxkit-ssh"
# shellcheck disable=SC2086
build_kernel_initrd dropbear-arm64 $arm64_kernel "$out/linuxkit-ssh-arm64" virtio_pci virtio_net virtio_blk virtio_scsi sr_mod isofs
# shellcheck disable=SC2086
build_kernel_initrd dropbear $generic_kernel "$out/linuxkit-ssh-9p" $modules 9pnet_virtio 9p
# shellcheck disable=SC2086
build_kernel_initrd openssh $cloud_kernel "$out/linuxkit-sshd" $modules

# variant PREFIX NAME FILE=SOURCE...: PREFIX-NAME, with FILE (under /etc/linuxkit-test) from SOURCE.
variant() {
  local prefix=$1 name=$2 overlay=$work/overlay-$2 pair; shift 2
  rm -rf "$overlay"; mkdir -p "$overlay/etc/linuxkit-test"
  for pair in "$@"; do
    cp "${pair#*=}" "$overlay/etc/linuxkit-test/${pair%%=*}"
    chmod 600 "$overlay/etc/linuxkit-test/${pair%%=*}"
  done
  cp "$prefix-kernel" "$prefix-$name-kernel"
  cp "$prefix-cmdline" "$prefix-$name-cmdline"
  { cat "$prefix-initrd.img"; (cd "$overlay" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9); } > "$prefix-$name-initrd.img"
}
rm -f "$out/baked-key" "$out/baked-key.pub"
ssh-keygen -q -t ed25519 -N "" -C linuxkit-testing-baked-key -f "$out/baked-key"
printf 'login_user=user\n' > "$work/shape-user"
printf 'tmp_options=noexec,nosuid,nodev\n' > "$work/shape-noexec"
printf 'metadata=cloud-init\n' > "$work/shape-cidata"
for prefix in "$out/linuxkit-ssh" "$out/linuxkit-sshd"; do
  variant "$prefix" baked authorized_keys="$out/baked-key.pub"
  variant "$prefix" user shape="$work/shape-user"
  variant "$prefix" noexec shape="$work/shape-noexec"
  variant "$prefix" cidata shape="$work/shape-cidata"
done

echo "$inputs_hash" > "$out/.inputs"
echo "$out/linuxkit-ssh"
