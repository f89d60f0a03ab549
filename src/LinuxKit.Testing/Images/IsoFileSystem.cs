using System.Buffers.Binary;
using System.Text;

namespace LinuxKit.Testing.Images;

/// <summary>
/// An ISO 9660 file system read as ISOLINUX reads it: names from Rock Ridge when the ISO has
/// them (LinuxKit's ISOs are made with <c>-R</c>), else the plain ISO names compared without
/// case and without their ";1" version.
/// </summary>
internal sealed class IsoFileSystem : ImageFileSystem
{
    private const int Sector = 2048;
    private const int MaxDirectory = 4 << 20;

    private readonly FileRun _root;

    private IsoFileSystem(VirtualDisk disk, FileRun root)
        : base(disk) => _root = root;

    public override string Description => "the ISO 9660 file system";

    /// <summary>The file system of the ISO in <paramref name="disk"/>; null when its primary volume descriptor is missing.</summary>
    public static IsoFileSystem? Open(VirtualDisk disk)
    {
        var descriptor = disk.Read(16 * Sector, Sector);
        if (descriptor.Length < Sector || descriptor[0] != 1 || !descriptor.AsSpan(1, 5).SequenceEqual("CD001"u8)) return null;
        var root = descriptor.AsSpan(156, 34);
        return new IsoFileSystem(disk, Extent(root));
    }

    public override IReadOnlyList<FileRun>? Find(string path)
    {
        var current = _root;
        var parts = Parts(path);
        for (var i = 0; i < parts.Length; i++)
        {
            if (Entry(current, parts[i]) is not { } entry) return null;
            var last = i == parts.Length - 1;
            if (entry.Directory == last) return null; // a directory where a file was wanted, or the reverse
            current = entry.Run;
        }
        return parts.Length == 0 ? null : [current];
    }

    private (FileRun Run, bool Directory)? Entry(FileRun directory, string name)
    {
        if (directory.Length > MaxDirectory) throw new InvalidDataException($"a directory of {directory.Length} bytes in {Description}");
        var bytes = Disk.Read(directory.Offset, (int)directory.Length);
        (FileRun, bool)? plainMatch = null;
        for (var at = 0; at < bytes.Length;)
        {
            var length = bytes[at];
            // Records do not cross sectors: a zero length pads to the next one.
            if (length == 0)
            {
                at = ((at / Sector) + 1) * Sector;
                continue;
            }
            if (length < 34 || at + length > bytes.Length) throw new InvalidDataException($"a damaged directory record in {Description}");
            var record = bytes.AsSpan(at, length);
            at += length;
            int nameLength = record[32];
            if (33 + nameLength > record.Length) throw new InvalidDataException($"a damaged directory record in {Description}");
            var identifier = record.Slice(33, nameLength);
            if (nameLength == 1 && identifier[0] is 0 or 1) continue; // "." and ".."
            var isDirectory = (record[25] & 2) != 0;
            var systemUse = record[Math.Min(record.Length, 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0))..];
            if (RockRidgeName(systemUse) is { } rockRidge)
            {
                if (rockRidge == name) return (Extent(record), isDirectory);
                continue;
            }
            if (plainMatch is null && string.Equals(PlainName(identifier), name, StringComparison.OrdinalIgnoreCase))
                plainMatch = (Extent(record), isDirectory);
        }
        return plainMatch;
    }

    private static FileRun Extent(ReadOnlySpan<byte> record) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(record[2..]) * (long)Sector, BinaryPrimitives.ReadUInt32LittleEndian(record[10..]));

    // "KERNEL.;1" -> "KERNEL", "INITRD.IMG;1" -> "INITRD.IMG".
    private static string PlainName(ReadOnlySpan<byte> identifier)
    {
        var name = Encoding.ASCII.GetString(identifier);
        var version = name.IndexOf(';', StringComparison.Ordinal);
        if (version >= 0) name = name[..version];
        return name.TrimEnd('.');
    }

    // The Rock Ridge "NM" entries of a record's system use area, joined; null when it has none.
    private static string? RockRidgeName(ReadOnlySpan<byte> systemUse)
    {
        StringBuilder? name = null;
        while (systemUse.Length >= 4)
        {
            int length = systemUse[2];
            if (length < 4 || length > systemUse.Length) break;
            if (systemUse[0] == 'N' && systemUse[1] == 'M' && length >= 5)
            {
                var flags = systemUse[4];
                // "." and ".." flags carry no name.
                if ((flags & 0b110) == 0) (name ??= new StringBuilder()).Append(Encoding.UTF8.GetString(systemUse[5..length]));
            }
            systemUse = systemUse[length..];
        }
        return name?.ToString();
    }
}
