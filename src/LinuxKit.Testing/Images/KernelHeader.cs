using System.Buffers.Binary;
using System.IO.Compression;

namespace LinuxKit.Testing.Images;

/// <summary>Which architecture a Linux kernel file is built for, from its header.</summary>
internal static class KernelHeader
{
    // The most of a gzip-compressed kernel unpacked to read its header.
    private const int UnpackedHeader = 4096;
    private const ushort PeArm64 = 0xAA64;

    /// <summary>
    /// x86_64 for a bzImage (its setup header's "HdrS"), arm64 for an arm64 Image (the "ARM\x64"
    /// magic at 0x38), an EFI zboot image whose PE header says arm64, or either of those
    /// gzip-compressed (Debian ships arm64 kernels so); null for anything else.
    /// </summary>
    public static GuestArchitecture? Architecture(ReadOnlySpan<byte> header) => Architecture(header, unpack: true);

    private static GuestArchitecture? Architecture(ReadOnlySpan<byte> header, bool unpack)
    {
        if (At(header, 0x202, "HdrS"u8)) return GuestArchitecture.X64;
        if (At(header, 0x38, "ARMd"u8)) return GuestArchitecture.Arm64;
        if (At(header, 0, "MZ"u8) && At(header, 4, "zimg"u8) && PeMachine(header) == PeArm64) return GuestArchitecture.Arm64;
        if (unpack && At(header, 0, [0x1F, 0x8B]) && Gunzip(header) is { Length: > 0 } unpacked) return Architecture(unpacked, unpack: false);
        return null;
    }

    private static ushort? PeMachine(ReadOnlySpan<byte> header)
    {
        if (header.Length < 0x40) return null;
        var pe = BinaryPrimitives.ReadInt32LittleEndian(header[0x3C..]);
        if (pe < 0 || !At(header, pe, "PE\0\0"u8) || header.Length < (long)pe + 6) return null;
        return BinaryPrimitives.ReadUInt16LittleEndian(header[(pe + 4)..]);
    }

    // The start of the gzip stream is enough: the kernel's header is its first bytes.
    private static byte[] Gunzip(ReadOnlySpan<byte> compressed)
    {
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
            var buffer = new byte[UnpackedHeader];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = gzip.Read(buffer, total, buffer.Length - total)) > 0) total += read;
            return buffer[..total];
        }
        catch (InvalidDataException)
        {
            return [];
        }
    }

    // In long arithmetic: an offset read from the file may be near int.MaxValue.
    private static bool At(ReadOnlySpan<byte> data, int offset, ReadOnlySpan<byte> expected) =>
        offset >= 0 && data.Length >= (long)offset + expected.Length && data.Slice(offset, expected.Length).SequenceEqual(expected);
}
