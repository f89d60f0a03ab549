using System.Buffers.Binary;

namespace LinuxKit.Testing.Images;

/// <summary>
/// What an ISO's El Torito boot catalog offers: a BIOS boot entry (platform 0, x86), an EFI one
/// (platform 0xEF), or both, and where the EFI entry's image (a FAT file system holding
/// EFI/BOOT/BOOT*.EFI) lies.
/// </summary>
internal sealed record ElToritoCatalog(bool Bios, bool Efi, long EfiImageOffset, long EfiImageLength)
{
    private const int Sector = 2048;
    private const byte PlatformX86 = 0;
    private const byte PlatformEfi = 0xEF;
    private const byte Bootable = 0x88;

    /// <summary>The catalog of the ISO in <paramref name="disk"/>; null when it has none (the ISO boots nothing).</summary>
    public static ElToritoCatalog? Read(VirtualDisk disk)
    {
        // The boot record volume descriptor is the one after the primary, in sector 17.
        var record = disk.Read(17 * Sector, Sector);
        if (record.Length < 0x4B || record[0] != 0 || !record.AsSpan(1, 5).SequenceEqual("CD001"u8)
            || !record.AsSpan(7, 23).SequenceEqual("EL TORITO SPECIFICATION"u8))
            return null;
        var catalog = disk.Read(BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(0x47)) * (long)Sector, Sector);
        // The validation entry: header 1, the platform of the default entry, key 55 AA.
        if (catalog.Length < 64 || catalog[0] != 1 || catalog[30] != 0x55 || catalog[31] != 0xAA) return null;

        bool bios = false, efi = false;
        long efiOffset = 0, efiLength = 0;
        void Entry(byte platform, ReadOnlySpan<byte> entry)
        {
            if (entry[0] != Bootable) return;
            if (platform == PlatformX86) bios = true;
            if (platform == PlatformEfi && !efi)
            {
                efi = true;
                efiOffset = BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]) * (long)Sector;
                efiLength = BinaryPrimitives.ReadUInt16LittleEndian(entry[6..]) * 512L; // 0 or 1 when the image is larger than 32 MiB
            }
        }
        Entry(catalog[1], catalog.AsSpan(32, 32));
        // Section headers (0x90, the last 0x91) each name a platform and how many entries follow.
        for (var at = 64; at + 32 <= catalog.Length;)
        {
            var header = catalog[at];
            if (header is not (0x90 or 0x91)) break;
            var platform = catalog[at + 1];
            var entries = BinaryPrimitives.ReadUInt16LittleEndian(catalog.AsSpan(at + 2));
            at += 32;
            for (var i = 0; i < entries && at + 32 <= catalog.Length; at += 32)
            {
                if (catalog[at] == 0x44) continue; // an extension of the entry before
                Entry(platform, catalog.AsSpan(at, 32));
                i++;
            }
            if (header == 0x91) break;
        }
        return new ElToritoCatalog(bios, efi, efiOffset, efiLength);
    }
}
