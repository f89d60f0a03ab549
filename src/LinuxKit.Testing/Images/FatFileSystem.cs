using System.Buffers.Binary;
using System.Text;

namespace LinuxKit.Testing.Images;

/// <summary>
/// A FAT12, FAT16 or FAT32 file system in a disk partition, as SYSLINUX reads it: long names
/// when an entry has them, else its 8.3 name, both compared without case.
/// </summary>
internal sealed class FatFileSystem : ImageFileSystem
{
    private const int MaxFat = 16 << 20;
    private const int MaxDirectory = 4 << 20;

    private readonly long _start;
    private readonly int _sectorSize;
    private readonly int _clusterSize;
    private readonly long _dataStart;
    private readonly int _fatBits;
    private readonly byte[] _fat;
    private readonly FileRun? _fixedRoot;
    private readonly uint _rootCluster;

    private FatFileSystem(VirtualDisk disk, long start, ReadOnlySpan<byte> boot)
        : base(disk)
    {
        _start = start;
        _sectorSize = BinaryPrimitives.ReadUInt16LittleEndian(boot[11..]);
        _clusterSize = boot[13] * _sectorSize;
        long reserved = BinaryPrimitives.ReadUInt16LittleEndian(boot[14..]);
        int fats = boot[16];
        int rootEntries = BinaryPrimitives.ReadUInt16LittleEndian(boot[17..]);
        long sectors = BinaryPrimitives.ReadUInt16LittleEndian(boot[19..]) is var small and not 0 ? small : BinaryPrimitives.ReadUInt32LittleEndian(boot[32..]);
        long fatSectors = BinaryPrimitives.ReadUInt16LittleEndian(boot[22..]) is var fat16 and not 0 ? fat16 : BinaryPrimitives.ReadUInt32LittleEndian(boot[36..]);
        var rootSectors = ((rootEntries * 32L) + _sectorSize - 1) / _sectorSize;
        var dataSector = reserved + (fats * fatSectors) + rootSectors;
        var clusters = (sectors - dataSector) / boot[13];
        // The type follows from the cluster count alone (Microsoft's FAT specification).
        _fatBits = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
        _dataStart = start + (dataSector * _sectorSize);
        var fatBytes = fatSectors * _sectorSize;
        if (fatBytes > MaxFat) throw new InvalidDataException($"a FAT of {fatBytes} bytes");
        _fat = disk.Read(start + (reserved * _sectorSize), (int)fatBytes);
        if (_fatBits == 32) _rootCluster = BinaryPrimitives.ReadUInt32LittleEndian(boot[44..]);
        else _fixedRoot = new FileRun(start + ((reserved + (fats * fatSectors)) * _sectorSize), rootSectors * _sectorSize);
    }

    public override string Description => $"the FAT{_fatBits} file system at byte {_start}";

    /// <summary>The FAT file system starting at <paramref name="start"/>; null when its boot sector is no FAT one.</summary>
    public static FatFileSystem? Open(VirtualDisk disk, long start)
    {
        var boot = disk.Read(start, 512);
        if (boot.Length < 512 || boot[510] != 0x55 || boot[511] != 0xAA) return null;
        var sectorSize = BinaryPrimitives.ReadUInt16LittleEndian(boot.AsSpan(11));
        var perCluster = boot[13];
        if (sectorSize is not (512 or 1024 or 2048 or 4096) || perCluster == 0 || (perCluster & (perCluster - 1)) != 0 || boot[16] == 0) return null;
        if (BinaryPrimitives.ReadUInt16LittleEndian(boot.AsSpan(14)) == 0) return null;
        return new FatFileSystem(disk, start, boot);
    }

    public override IReadOnlyList<FileRun>? Find(string path)
    {
        var parts = Parts(path);
        IReadOnlyList<FileRun> current = _fixedRoot is { } root ? [root] : Chain(_rootCluster, long.MaxValue);
        for (var i = 0; i < parts.Length; i++)
        {
            if (Entry(current, parts[i]) is not { } entry) return null;
            var last = i == parts.Length - 1;
            if (entry.Directory == last) return null;
            current = Chain(entry.Cluster, entry.Directory ? long.MaxValue : entry.Size);
        }
        return parts.Length == 0 ? null : current;
    }

    private (uint Cluster, long Size, bool Directory)? Entry(IReadOnlyList<FileRun> directory, string name)
    {
        var bytes = ReadDirectory(directory);
        var longName = new StringBuilder();
        for (var at = 0; at + 32 <= bytes.Length; at += 32)
        {
            var entry = bytes.AsSpan(at, 32);
            if (entry[0] == 0) break; // the end of the directory
            if (entry[0] == 0xE5) // deleted
            {
                longName.Clear();
                continue;
            }
            var attributes = entry[11];
            if (attributes == 0x0F)
            {
                // Long name parts come last first; each holds 13 UTF-16 characters.
                if ((entry[0] & 0x40) != 0) longName.Clear();
                longName.Insert(0, LongNamePart(entry));
                continue;
            }
            var shortName = ShortName(entry);
            var matches = string.Equals(longName.ToString(), name, StringComparison.OrdinalIgnoreCase)
                || string.Equals(shortName, name, StringComparison.OrdinalIgnoreCase);
            longName.Clear();
            if ((attributes & 0x08) != 0 || !matches) continue; // a volume label
            var cluster = ((uint)BinaryPrimitives.ReadUInt16LittleEndian(entry[20..]) << 16) | BinaryPrimitives.ReadUInt16LittleEndian(entry[26..]);
            if (_fatBits != 32) cluster &= 0xFFFF;
            return (cluster, BinaryPrimitives.ReadUInt32LittleEndian(entry[28..]), (attributes & 0x10) != 0);
        }
        return null;
    }

    private byte[] ReadDirectory(IReadOnlyList<FileRun> runs) =>
        runs.Sum(r => r.Length) <= MaxDirectory ? Read(Disk, runs, MaxDirectory) : throw new InvalidDataException($"a directory larger than {MaxDirectory} bytes in {Description}");

    // The clusters from first on, as runs of adjacent clusters, cut at size bytes.
    private List<FileRun> Chain(uint first, long size)
    {
        var runs = new List<FileRun>();
        if (size == 0) return runs;
        var end = _fatBits switch { 12 => 0xFF8u, 16 => 0xFFF8u, _ => 0x0FFFFFF8u };
        var seen = 0L;
        var limit = (_fat.Length * 8L / _fatBits) + 1;
        long left = size;
        for (var cluster = first; cluster >= 2 && cluster < end && left > 0; cluster = Next(cluster))
        {
            if (++seen > limit) throw new InvalidDataException($"a cluster chain that loops in {Description}");
            var offset = _dataStart + ((cluster - 2L) * _clusterSize);
            var length = Math.Min(_clusterSize, left);
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Length == offset) runs[^1] = runs[^1] with { Length = runs[^1].Length + length };
            else runs.Add(new FileRun(offset, length));
            if (size != long.MaxValue) left -= length;
        }
        if (size != long.MaxValue && left > 0) throw new InvalidDataException($"a file's cluster chain ends {left} bytes short in {Description}");
        return runs;
    }

    private uint Next(uint cluster)
    {
        switch (_fatBits)
        {
            case 12:
                var at = (int)(cluster + (cluster / 2));
                if (at + 2 > _fat.Length) return 0xFFF;
                var pair = BinaryPrimitives.ReadUInt16LittleEndian(_fat.AsSpan(at));
                return (cluster & 1) == 0 ? pair & 0xFFFu : (uint)pair >> 4;
            case 16:
                return cluster * 2 + 2 > _fat.Length ? 0xFFFFu : BinaryPrimitives.ReadUInt16LittleEndian(_fat.AsSpan((int)cluster * 2));
            default:
                return cluster * 4L + 4 > _fat.Length ? 0x0FFFFFFF : BinaryPrimitives.ReadUInt32LittleEndian(_fat.AsSpan((int)cluster * 4)) & 0x0FFFFFFF;
        }
    }

    private static string ShortName(ReadOnlySpan<byte> entry)
    {
        var stem = Encoding.ASCII.GetString(entry[..8]).TrimEnd();
        var extension = Encoding.ASCII.GetString(entry.Slice(8, 3)).TrimEnd();
        return extension.Length == 0 ? stem : stem + "." + extension;
    }

    private static string LongNamePart(ReadOnlySpan<byte> entry)
    {
        var units = new List<char>(13);
        foreach (var (from, count) in new[] { (1, 5), (14, 6), (28, 2) })
        {
            for (var i = 0; i < count; i++)
            {
                var unit = (char)BinaryPrimitives.ReadUInt16LittleEndian(entry[(from + (i * 2))..]);
                if (unit is '\0' or '\uFFFF') return new string(units.ToArray());
                units.Add(unit);
            }
        }
        return new string(units.ToArray());
    }
}
