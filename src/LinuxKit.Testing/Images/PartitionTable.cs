using System.Buffers.Binary;

namespace LinuxKit.Testing.Images;

/// <summary>
/// What a disk's partition table says about how it boots: BIOS boot code in its master boot
/// record, and an EFI System Partition (in a GPT, or an MBR partition of type 0xEF).
/// </summary>
internal sealed record PartitionTable(bool BiosBootCode, bool Gpt, long EspOffset, long EspLength)
{
    /// <summary>The partitions of an MBR (numbered 1 to 4) or a GPT (numbered from 1 in entry order), empty ones left out.</summary>
    public IReadOnlyList<DiskPartition> Partitions { get; init; } = [];

    /// <summary>The partitions in the order a BIOS boot tries them: the MBR's active one first.</summary>
    public IEnumerable<DiskPartition> BootOrder() => Partitions.OrderByDescending(p => p.Active).ThenBy(p => p.Number);

    private const int Sector = 512;

    // C12A7328-F81F-11D2-BA4B-00A0C93EC93B as it is stored (the first three fields little-endian).
    private static readonly byte[] EspType = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];

    /// <summary>Whether the disk has an EFI System Partition.</summary>
    public bool HasEsp => EspLength > 0;

    /// <summary>The partition table of <paramref name="disk"/>; null when its first sector is no boot sector.</summary>
    public static PartitionTable? Read(VirtualDisk disk)
    {
        var mbr = disk.Read(0, Sector);
        if (mbr.Length < Sector || mbr[510] != 0x55 || mbr[511] != 0xAA) return null;
        // A protective MBR (GPT disks made for UEFI) leaves the 440 bytes of boot code empty;
        // syslinux, GRUB and LinuxKit's BIOS outputs put their first stage there.
        var bootCode = mbr.AsSpan(0, 440).ContainsAnyExcept((byte)0);

        var gpt = disk.Read(Sector, Sector);
        if (gpt.Length == Sector && gpt.AsSpan(0, 8).SequenceEqual("EFI PART"u8))
        {
            var entriesAt = (long)BinaryPrimitives.ReadUInt64LittleEndian(gpt.AsSpan(72)) * Sector;
            var count = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(gpt.AsSpan(80)), 256);
            var size = (int)BinaryPrimitives.ReadUInt32LittleEndian(gpt.AsSpan(84));
            if (size is >= 128 and <= 4096)
            {
                var entries = disk.Read(entriesAt, count * size);
                var partitions = new List<DiskPartition>();
                DiskPartition? esp = null;
                for (var i = 0; (i + 1) * size <= entries.Length; i++)
                {
                    var entry = entries.AsSpan(i * size, size);
                    if (!entry[..16].ContainsAnyExcept((byte)0)) continue;
                    var first = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[32..]);
                    var last = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[40..]);
                    var partition = new DiskPartition(i + 1, first * Sector, (last - first + 1) * Sector, Active: false);
                    partitions.Add(partition);
                    if (esp is null && entry[..16].SequenceEqual(EspType)) esp = partition;
                }
                return new PartitionTable(bootCode, true, esp?.Offset ?? 0, esp?.Length ?? 0) { Partitions = partitions };
            }
            return new PartitionTable(bootCode, true, 0, 0);
        }
        var table = new List<DiskPartition>();
        DiskPartition? efi = null;
        for (var i = 0; i < 4; i++)
        {
            var entry = mbr.AsSpan(446 + (i * 16), 16);
            if (entry[4] == 0) continue;
            var partition = new DiskPartition(i + 1,
                BinaryPrimitives.ReadUInt32LittleEndian(entry[8..]) * (long)Sector, BinaryPrimitives.ReadUInt32LittleEndian(entry[12..]) * (long)Sector, Active: entry[0] == 0x80);
            table.Add(partition);
            if (efi is null && entry[4] == 0xEF) efi = partition;
        }
        return new PartitionTable(bootCode, false, efi?.Offset ?? 0, efi?.Length ?? 0) { Partitions = table };
    }
}

/// <summary>One partition: its number, where it lies, and whether an MBR marks it active (bootable).</summary>
internal sealed record DiskPartition(int Number, long Offset, long Length, bool Active);
