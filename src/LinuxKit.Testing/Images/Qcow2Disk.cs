using System.Buffers.Binary;

namespace LinuxKit.Testing.Images;

/// <summary>
/// Reads a qcow2 image's guest bytes through its L1 and L2 tables: enough to read a partition
/// table and the start of a partition without qemu-img. Compressed clusters, encryption, backing
/// files, external data files and extended L2 entries are not read (LinuxKit's qcow2 outputs
/// use none of them): <c>Open</c> returns null, or <see cref="VirtualDisk.Read"/> throws
/// <see cref="InvalidDataException"/>, and the image's content counts as unknown.
/// </summary>
internal sealed class Qcow2Disk : VirtualDisk
{
    private const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00;
    private const ulong Compressed = 1UL << 62;
    private const ulong ReadsAsZeros = 1UL;
    private const ulong ExternalDataFile = 1UL << 2;
    private const ulong ExtendedL2 = 1UL << 4;

    private readonly Stream _file;
    private readonly int _clusterBits;
    private readonly long _l1Offset;
    private readonly long _l1Entries;
    private readonly long _size;

    private Qcow2Disk(Stream file, int clusterBits, long l1Offset, long l1Entries, long size)
    {
        _file = file;
        _clusterBits = clusterBits;
        _l1Offset = l1Offset;
        _l1Entries = l1Entries;
        _size = size;
    }

    public static Qcow2Disk? Open(string path) => Open(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));

    /// <summary>The guest's bytes of the qcow2 image in <paramref name="file"/> (a seekable stream it then owns).</summary>
    public static Qcow2Disk? Open(Stream file)
    {
        var header = ReadFile(file, 0, 112);
        if (header.Length < 72 || BinaryPrimitives.ReadUInt32BigEndian(header) != 0x514649FB) return Refuse(file);
        var version = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
        var backing = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
        var clusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(20));
        var encrypted = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(32)) != 0;
        var incompatible = version >= 3 && header.Length >= 80 ? BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(72)) : 0;
        if (backing != 0 || encrypted || clusterBits is < 9 or > 21 || (incompatible & (ExternalDataFile | ExtendedL2)) != 0) return Refuse(file);
        return new Qcow2Disk(
            file,
            clusterBits,
            (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(40)),
            BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(36)),
            (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(24)));
    }

    private static Qcow2Disk? Refuse(Stream file)
    {
        file.Dispose();
        return null;
    }

    protected override byte[] ReadAt(long offset, int length)
    {
        if (offset >= _size) return [];
        var result = new byte[(int)Math.Min(length, _size - offset)];
        var clusterSize = 1L << _clusterBits;
        var entriesPerTable = clusterSize / 8;
        var done = 0;
        while (done < result.Length)
        {
            var position = offset + done;
            var cluster = position >> _clusterBits;
            var within = position & (clusterSize - 1);
            var count = (int)Math.Min(result.Length - done, clusterSize - within);
            var hostCluster = HostCluster(cluster / entriesPerTable, cluster % entriesPerTable);
            if (hostCluster != 0)
            {
                var bytes = ReadFile(_file, hostCluster + within, count);
                if (bytes.Length != count) throw new InvalidDataException("a qcow2 data cluster lies past the end of the file");
                bytes.CopyTo(result, done);
            }
            done += count; // an unallocated cluster reads as zeros
        }
        return result;
    }

    // The file offset of a guest cluster's data; 0 when the cluster reads as zeros.
    private long HostCluster(long l1Index, long l2Index)
    {
        if (l1Index >= _l1Entries) return 0;
        var l2Table = (long)(Entry(_l1Offset + (l1Index * 8)) & OffsetMask);
        if (l2Table == 0) return 0;
        var entry = Entry(l2Table + (l2Index * 8));
        if ((entry & Compressed) != 0) throw new InvalidDataException("the image's clusters are compressed");
        if ((entry & ReadsAsZeros) != 0) return 0;
        return (long)(entry & OffsetMask);
    }

    private ulong Entry(long at)
    {
        var bytes = ReadFile(_file, at, 8);
        if (bytes.Length != 8) throw new InvalidDataException("a qcow2 table lies past the end of the file");
        return BinaryPrimitives.ReadUInt64BigEndian(bytes);
    }

    public override void Dispose()
    {
        _file.Dispose();
        base.Dispose();
    }
}
