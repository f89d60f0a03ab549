using System.Buffers.Binary;
using System.Text;

namespace LinuxKit.Testing.Images;

/// <summary>
/// Writes the metadata disk: an ISO9660 image whose root holds a few small files (LinuxKit's
/// <c>config</c>, cloud-init NoCloud's <c>user-data</c> and <c>meta-data</c>).
/// </summary>
/// <remarks>
/// Written here rather than by calling xorriso or mkisofs: no ISO9660 package is available on
/// NuGet for this, and a host tool would be one more thing every user (macOS included) has to
/// install. The image needs only the plain ISO9660 level 1 structures, which fit in a page.
/// </remarks>
internal static class MetadataIso
{
    private const int Sector = 2048;
    private const int PvdSector = 16, TerminatorSector = 17, LPathSector = 18, MPathSector = 19, RootSector = 20, DataSector = 21;

    /// <summary>An ISO labelled <paramref name="volumeId"/> holding <paramref name="files"/> in its root.</summary>
    /// <param name="files">Names as Linux shows them without Rock Ridge (lowercase; "user-data" is stored as USER-DATA.;1) and contents.</param>
    /// <param name="timestamp">The volume's and the files' time.</param>
    /// <param name="volumeId">The volume label: cloud-init NoCloud looks for <c>cidata</c>.</param>
    public static byte[] Build(IReadOnlyList<(string Name, byte[] Content)> files, DateTime timestamp, string volumeId)
    {
        // ISO9660 wants the root's records sorted by identifier.
        var entries = files
            .Select(f => (Identifier: Encoding.ASCII.GetBytes(f.Name.ToUpperInvariant() + ".;1"), f.Content))
            .OrderBy(f => Encoding.ASCII.GetString(f.Identifier), StringComparer.Ordinal)
            .ToList();
        var sectors = entries.Select(e => Math.Max(1, (e.Content.Length + Sector - 1) / Sector)).ToList();
        var totalSectors = DataSector + sectors.Sum();
        var iso = new byte[totalSectors * Sector];

        WritePrimaryVolumeDescriptor(iso.AsSpan(PvdSector * Sector, Sector), totalSectors, timestamp, volumeId);
        var terminator = iso.AsSpan(TerminatorSector * Sector, Sector);
        terminator[0] = 255;
        "CD001"u8.CopyTo(terminator[1..]);
        terminator[6] = 1;

        WritePathTable(iso.AsSpan(LPathSector * Sector, Sector), littleEndian: true);
        WritePathTable(iso.AsSpan(MPathSector * Sector, Sector), littleEndian: false);

        var root = iso.AsSpan(RootSector * Sector, Sector);
        var offset = WriteDirectoryRecord(root, RootSector, Sector, [0], isDirectory: true, timestamp);
        offset += WriteDirectoryRecord(root[offset..], RootSector, Sector, [1], isDirectory: true, timestamp);
        var extent = DataSector;
        for (var i = 0; i < entries.Count; i++)
        {
            offset += WriteDirectoryRecord(root[offset..], extent, entries[i].Content.Length, entries[i].Identifier, isDirectory: false, timestamp);
            entries[i].Content.CopyTo(iso.AsSpan(extent * Sector));
            extent += sectors[i];
        }
        return iso;
    }

    private static void WritePrimaryVolumeDescriptor(Span<byte> pvd, int totalSectors, DateTime timestamp, string volumeId)
    {
        pvd[0] = 1;
        "CD001"u8.CopyTo(pvd[1..]);
        pvd[6] = 1;
        Text(pvd.Slice(8, 32), "LINUX");
        Text(pvd.Slice(40, 32), volumeId);
        BothEndian32(pvd[80..], totalSectors);
        BothEndian16(pvd[120..], 1);             // volume set size
        BothEndian16(pvd[124..], 1);             // volume sequence number
        BothEndian16(pvd[128..], Sector);        // logical block size
        BothEndian32(pvd[132..], PathTableLength);
        BinaryPrimitives.WriteInt32LittleEndian(pvd[140..], LPathSector);
        BinaryPrimitives.WriteInt32BigEndian(pvd[148..], MPathSector);
        WriteDirectoryRecord(pvd[156..], RootSector, Sector, [0], isDirectory: true, timestamp);
        Text(pvd.Slice(190, 128), "");           // volume set
        Text(pvd.Slice(318, 128), "");           // publisher
        Text(pvd.Slice(446, 128), "");           // preparer
        Text(pvd.Slice(574, 128), "LINUXKIT.TESTING");
        Text(pvd.Slice(702, 37 * 3), "");        // copyright, abstract, bibliographic files
        LongDate(pvd[813..], timestamp);         // created
        LongDate(pvd[830..], timestamp);         // modified
        "0000000000000000"u8.CopyTo(pvd[847..]); // expires: never
        "0000000000000000"u8.CopyTo(pvd[864..]); // effective: at once
        pvd[881] = 1;                            // file structure version
    }

    private const int PathTableLength = 10;

    private static void WritePathTable(Span<byte> table, bool littleEndian)
    {
        table[0] = 1; // identifier length: the root's single 0 byte
        if (littleEndian)
        {
            BinaryPrimitives.WriteInt32LittleEndian(table[2..], RootSector);
            BinaryPrimitives.WriteInt16LittleEndian(table[6..], 1);
        }
        else
        {
            BinaryPrimitives.WriteInt32BigEndian(table[2..], RootSector);
            BinaryPrimitives.WriteInt16BigEndian(table[6..], 1);
        }
    }

    private static int WriteDirectoryRecord(Span<byte> record, int extent, int length, ReadOnlySpan<byte> name, bool isDirectory, DateTime timestamp)
    {
        var recordLength = 33 + name.Length + (name.Length % 2 == 0 ? 1 : 0);
        record[0] = (byte)recordLength;
        BothEndian32(record[2..], extent);
        BothEndian32(record[10..], length);
        record[18] = (byte)(timestamp.Year - 1900);
        record[19] = (byte)timestamp.Month;
        record[20] = (byte)timestamp.Day;
        record[21] = (byte)timestamp.Hour;
        record[22] = (byte)timestamp.Minute;
        record[23] = (byte)timestamp.Second;
        record[25] = isDirectory ? (byte)2 : (byte)0;
        BothEndian16(record[28..], 1);
        record[32] = (byte)name.Length;
        name.CopyTo(record[33..]);
        return recordLength;
    }

    private static void Text(Span<byte> field, string value)
    {
        field.Fill((byte)' ');
        Encoding.ASCII.GetBytes(value, field);
    }

    private static void LongDate(Span<byte> field, DateTime timestamp)
    {
        Encoding.ASCII.GetBytes(timestamp.ToString("yyyyMMddHHmmss00", System.Globalization.CultureInfo.InvariantCulture), field);
        field[16] = 0; // GMT
    }

    private static void BothEndian32(Span<byte> field, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(field, value);
        BinaryPrimitives.WriteInt32BigEndian(field[4..], value);
    }

    private static void BothEndian16(Span<byte> field, int value)
    {
        BinaryPrimitives.WriteInt16LittleEndian(field, (short)value);
        BinaryPrimitives.WriteInt16BigEndian(field[2..], (short)value);
    }
}
