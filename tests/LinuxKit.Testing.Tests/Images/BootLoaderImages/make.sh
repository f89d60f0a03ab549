#!/bin/bash
# Makes the small images BootLoaderImageTests read, with the tools LinuxKit's own image makers
# use (xorriso as mkisofs, a FAT file system from mtools, sfdisk, qemu-img): the parsers are
# tested against what real tools write, not against bytes written by hand. The kernel and initrd
# are patterns the tests compute again (Pattern in BootLoaderImageTests). Run from this folder;
# the outputs are committed gzipped.
set -euo pipefail
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

pattern() { # LENGTH SEED -> bytes (i*SEED+3) mod 251; a kernel gets "HdrS" at 0x202
  python3 -c "import sys; n,s,k=int(sys.argv[1]),int(sys.argv[2]),sys.argv[3]=='kernel'
b=bytearray((i*s+3)%251 for i in range(n))
if k: b[0x202:0x206]=b'HdrS'
sys.stdout.buffer.write(b)" "$1" "$2" "$3"
}
pattern 70000 7 kernel > "$work/kernel"
pattern 30000 13 initrd > "$work/initrd"

# iso-bios as LinuxKit's mkimage-iso-bios makes it: Rock Ridge and Joliet, /vmlinuz64, INITRD line.
mkdir -p "$work/lk/isolinux"
head -c 2048 /dev/zero > "$work/lk/isolinux/isolinux.bin" # never run: a stand-in, not SYSLINUX's code
cp "$work/kernel" "$work/lk/vmlinuz64"; cp "$work/initrd" "$work/lk/initrd.img"
printf 'DEFAULT linux\nLABEL linux\n    KERNEL /vmlinuz64\n    INITRD /initrd.img\n    APPEND console=ttyS0 page_poison=1\n' > "$work/lk/isolinux/isolinux.cfg"
xorriso -as mkisofs -quiet -o "$work/linuxkit-bios.iso" -l -J -R -V LinuxKit -c isolinux/boot.cat -b isolinux/isolinux.bin \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$work/lk" 2>/dev/null

# Plain ISO 9660 names only (no Rock Ridge, no Joliet): KERNEL.;1, the initrd named in APPEND,
# the paths relative to the configuration's folder.
mkdir -p "$work/plain/boot/isolinux"
head -c 2048 /dev/zero > "$work/plain/boot/isolinux/isolinux.bin"
cp "$work/kernel" "$work/plain/boot/isolinux/kernel"; cp "$work/initrd" "$work/plain/boot/isolinux/initrd.img"
printf '# a comment\nPROMPT 0\nDEFAULT second\nLABEL first\n  KERNEL /nothing\nLABEL second\n  KERNEL kernel\n  APPEND initrd=initrd.img console=ttyS0\n' > "$work/plain/boot/isolinux/isolinux.cfg"
xorriso -as mkisofs -quiet -o "$work/plain-names.iso" -V PLAIN -c boot/isolinux/boot.cat -b boot/isolinux/isolinux.bin \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$work/plain" 2>/dev/null

# raw-bios as LinuxKit's mkimage-raw-bios makes it: one active partition at 1 MiB (type 83, as
# sfdisk leaves it) holding a FAT file system with syslinux.cfg, kernel and initrd.img; FAT12,
# FAT16 and FAT32 by size.
for fat in 12:4 16:24 32:40; do
  bits=${fat%%:*} mib=${fat##*:}
  raw="$work/fat$bits.img"
  truncate -s "${mib}M" "$raw"
  echo 'start=2048, bootable' | sfdisk -q "$raw"
  part="$raw@@1M"
  if [ "$bits" = 32 ]; then mformat -i "$part" -F -v LINUXKIT ::; else mformat -i "$part" -v LINUXKIT ::; fi
  printf 'DEFAULT linux\nLABEL linux\n    KERNEL /kernel\n    INITRD /initrd.img\n    APPEND console=ttyS0\n' > "$work/syslinux.cfg"
  mcopy -i "$part" "$work/syslinux.cfg" ::/syslinux.cfg
  mcopy -i "$part" "$work/kernel" ::/kernel
  mcopy -i "$part" "$work/initrd" ::/initrd.img
  minfo -i "$part" :: | grep -q "disk type=\"FAT$bits" || { echo "fat$bits.img: mformat made no FAT$bits" >&2; exit 1; }
done
qemu-img convert -q -f raw -O qcow2 "$work/fat16.img" "$work/fat16.qcow2"

for f in linuxkit-bios.iso plain-names.iso fat12.img fat16.img fat32.img fat16.qcow2; do gzip -9n < "$work/$f" > "$f.gz"; done
ls -l ./*.gz
