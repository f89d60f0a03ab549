using System.Buffers.Binary;

namespace LinuxKit.Testing.Images;

/// <summary>
/// Checks that a qcow2 or sparse VMDK image's header fits the file: a truncated download or copy
/// keeps a valid header whose tables point past the end of the file, and QEMU would start it
/// only for the firmware to find nothing to boot. Reading the header is enough to tell.
/// </summary>
internal static class DiskStructure
{
    private const ulong VmdkGrainDirectoryAtEnd = ulong.MaxValue;
    private const int Sector = 512;

    /// <summary>Why the image cannot be whole; null when its header fits the file.</summary>
    /// <param name="format">The format its signature gave.</param>
    /// <param name="header">The file's first bytes.</param>
    /// <param name="length">The file's length.</param>
    public static string? Flaw(ImageFormat format, ReadOnlySpan<byte> header, long length) => format switch
    {
        ImageFormat.Qcow2 => Qcow2Flaw(header, length),
        ImageFormat.Vmdk when header.Length >= 4 && header[..4].SequenceEqual("KDMV"u8) => VmdkFlaw(header, length),
        _ => null,
    };

    private static string? Qcow2Flaw(ReadOnlySpan<byte> header, long length)
    {
        if (header.Length < 72) return $"it ends inside its qcow2 header ({length} bytes)";
        var version = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        if (version is not (2 or 3)) return $"its qcow2 version is {version} (QEMU knows 2 and 3)";
        var clusterBits = BinaryPrimitives.ReadUInt32BigEndian(header[20..]);
        if (clusterBits is < 9 or > 21) return $"its cluster size is 2^{clusterBits} bytes (qcow2 allows 2^9 to 2^21)";
        var clusterSize = 1L << (int)clusterBits;
        var l1Entries = (long)BinaryPrimitives.ReadUInt32BigEndian(header[36..]);
        var l1Offset = BinaryPrimitives.ReadUInt64BigEndian(header[40..]);
        var refcountOffset = BinaryPrimitives.ReadUInt64BigEndian(header[48..]);
        var refcountClusters = (long)BinaryPrimitives.ReadUInt32BigEndian(header[56..]);
        return Past("its L1 table", l1Offset, l1Entries * 8, length)
            ?? Past("its refcount table", refcountOffset, refcountClusters * clusterSize, length);
    }

    private static string? VmdkFlaw(ReadOnlySpan<byte> header, long length)
    {
        if (header.Length < 77) return $"it ends inside its VMDK header ({length} bytes)";
        var descriptorSector = BinaryPrimitives.ReadUInt64LittleEndian(header[28..]);
        var descriptorSectors = BinaryPrimitives.ReadUInt64LittleEndian(header[36..]);
        var grainDirectorySector = BinaryPrimitives.ReadUInt64LittleEndian(header[56..]);
        var overheadSectors = BinaryPrimitives.ReadUInt64LittleEndian(header[64..]);
        if (descriptorSector != 0 && Past("its descriptor", descriptorSector * Sector, (long)descriptorSectors * Sector, length) is { } descriptor) return descriptor;
        // A stream-optimized VMDK keeps its grain directory in a footer, at the end.
        if (grainDirectorySector == VmdkGrainDirectoryAtEnd)
            return length < 3 * Sector ? $"it is {length} bytes, too short for the footer its header announces" : null;
        if (overheadSectors > (ulong)(length / Sector)) return $"its header says the metadata takes {overheadSectors * Sector} bytes, but the file has {length}";
        return Past("its grain directory", grainDirectorySector * Sector, Sector, length);
    }

    private static string? Past(string what, ulong offset, long size, long length) =>
        offset > (ulong)length || (long)offset + size > length
            ? $"{what} lies at bytes {offset}-{(long)offset + size}, past the end of the file ({length} bytes): the file is truncated or damaged"
            : null;
}
