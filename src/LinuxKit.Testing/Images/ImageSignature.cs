namespace LinuxKit.Testing.Images;

/// <summary>
/// Tells a file's format from its content. Extensions lie (an ISO renamed .qcow2 is an ISO),
/// so only the bytes decide.
/// </summary>
internal static class ImageSignature
{
    /// <summary>Bytes needed to see every signature and the whole ISO9660 primary volume descriptor (at 32 KiB).</summary>
    public const int HeaderLength = 0x8800;

    public static ImageFormat Detect(ReadOnlySpan<byte> header)
    {
        if (At(header, 0x8001, "CD001"u8)) return ImageFormat.Iso; // before MBR: hybrid ISOs carry both
        if (At(header, 0, [0x51, 0x46, 0x49, 0xFB])) return ImageFormat.Qcow2;
        if (At(header, 0, "KDMV"u8) || At(header, 0, "# Disk DescriptorFile"u8)) return ImageFormat.Vmdk;
        if (IsKernel(header)) return ImageFormat.KernelInitrd;
        if (At(header, 510, [0x55, 0xAA]) || At(header, 512, "EFI PART"u8)) return ImageFormat.Raw;
        return ImageFormat.Unknown;
    }

    /// <summary>A Linux kernel for x86_64 or arm64 (see <see cref="KernelHeader"/>).</summary>
    public static bool IsKernel(ReadOnlySpan<byte> header) => KernelHeader.Architecture(header) is not null;

    /// <summary>An initrd is a cpio archive, usually compressed.</summary>
    public static bool IsInitrd(ReadOnlySpan<byte> header) =>
        At(header, 0, [0x1F, 0x8B])                  // gzip
        || At(header, 0, [0xFD, 0x37, 0x7A, 0x58])   // xz
        || At(header, 0, [0x28, 0xB5, 0x2F, 0xFD])   // zstd
        || At(header, 0, [0x02, 0x21, 0x4C, 0x18])   // lz4 legacy
        || At(header, 0, "BZh"u8)
        || At(header, 0, "0707"u8);                  // uncompressed cpio

    public static string Describe(ReadOnlySpan<byte> header)
    {
        if (header.Length == 0) return "the file is empty";
        var printable = header[..Math.Min(8, header.Length)];
        var hex = Convert.ToHexString(printable);
        return $"it starts with bytes {hex}, which is no ISO9660, qcow2, VMDK, MBR/GPT disk or Linux kernel signature";
    }

    public static byte[] ReadHeader(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var buffer = new byte[HeaderLength];
        var total = 0;
        int read;
        while (total < buffer.Length && (read = stream.Read(buffer, total, buffer.Length - total)) > 0) total += read;
        return buffer[..total];
    }

    private static bool At(ReadOnlySpan<byte> data, int offset, ReadOnlySpan<byte> expected) =>
        data.Length >= offset + expected.Length && data.Slice(offset, expected.Length).SequenceEqual(expected);
}
