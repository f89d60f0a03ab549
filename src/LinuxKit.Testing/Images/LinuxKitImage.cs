using System.Buffers.Binary;
using LinuxKit.Testing.Hypervisors;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Images;

/// <summary>
/// A LinuxKit image resolved to the files a hypervisor boots, with its format detected from
/// content. Accepts what <c>linuxkit run</c> accepts: an image file (ISO, qcow2, VMDK, raw), a
/// kernel+initrd prefix NAME (with NAME-kernel, NAME-initrd.img and NAME-cmdline beside it),
/// or the NAME-kernel file itself.
/// </summary>
internal sealed record LinuxKitImage
{
    private const string KernelSuffix = "-kernel";
    private const string DefaultCommandLine = "console=ttyS0";

    /// <summary>The detected format.</summary>
    public required ImageFormat Format { get; init; }

    /// <summary>The image file, or for <see cref="ImageFormat.KernelInitrd"/> the kernel.</summary>
    public required string Path { get; init; }

    /// <summary>The initrd of a kernel+initrd image.</summary>
    public string? Initrd { get; init; }

    /// <summary>The kernel command line of a kernel+initrd image (from NAME-cmdline).</summary>
    public string? CommandLine { get; init; }

    /// <summary>How the image boots (firmware, architecture), read from its content.</summary>
    public BootContent Content { get; init; } = BootContent.Unknown("its content is not read here");

    /// <summary>
    /// For an ISO or disk booted with <see cref="RunOptions.DirectKernelBoot"/>: the kernel, initrd
    /// and command line its boot loader would start; null otherwise.
    /// </summary>
    public DirectKernel? DirectKernel { get; init; }

    /// <summary>Refuses a cluster disk on a hypervisor that boots local files.</summary>
    /// <exception cref="LinuxKitException">This is a cluster disk.</exception>
    public void RequireLocal(HypervisorKind hypervisor)
    {
        if (Format == ImageFormat.ClusterDisk)
            throw new LinuxKitException($"'{Path}' is a disk on a Kubernetes cluster, which {hypervisor} cannot boot: set LinuxKitManagerOptions.Hypervisor (or LINUXKIT_TESTING_HYPERVISOR) to KubeVirt, or pass a local image file.");
    }

    /// <summary>
    /// Resolves <paramref name="image"/> and checks its content.
    /// </summary>
    /// <exception cref="LinuxKitException">The image is missing, unreadable, of no known format or damaged.</exception>
    public static LinuxKitImage Resolve(string image, ILogger? logger = null)
    {
        if (string.IsNullOrWhiteSpace(image))
            throw new LinuxKitException("No image given: pass a LinuxKit image file (.iso, .qcow2, .vmdk, .img/.raw) or a kernel+initrd prefix.");

        if (ClusterDisk.IsReference(image))
            return new LinuxKitImage { Format = ImageFormat.ClusterDisk, Path = ClusterDisk.Parse(image).ToString() };

        var full = System.IO.Path.GetFullPath(image);
        if (Directory.Exists(full))
            throw new LinuxKitException($"Image '{full}' is a directory; pass an image file or a kernel+initrd prefix (NAME for NAME-kernel).");

        if (File.Exists(full))
        {
            if (full.EndsWith(KernelSuffix, StringComparison.Ordinal))
                return ResolvePrefix(full[..^KernelSuffix.Length]);
            return ResolveFile(full, logger);
        }
        if (File.Exists(full + KernelSuffix)) return ResolvePrefix(full);

        throw new LinuxKitException(
            $"Image '{full}' does not exist (nor a kernel+initrd image '{full}{KernelSuffix}'). " +
            "Check the path; relative paths are resolved from the current directory " + Environment.CurrentDirectory + ".");
    }

    private static LinuxKitImage ResolveFile(string path, ILogger? logger)
    {
        var header = ReadHeader(path);
        var format = ImageSignature.Detect(header);
        switch (format)
        {
            case ImageFormat.Unknown:
                throw new LinuxKitException($"Image '{path}' is not a bootable LinuxKit image: {ImageSignature.Describe(header)}.");
            case ImageFormat.KernelInitrd:
                throw new LinuxKitException(
                    $"Image '{path}' is a bare Linux kernel. Pass the LinuxKit prefix NAME, with NAME-kernel, NAME-initrd.img and NAME-cmdline beside each other.");
            case ImageFormat.Iso:
                CheckIsoLength(path, header);
                break;
            case ImageFormat.Qcow2 or ImageFormat.Vmdk:
                if (DiskStructure.Flaw(format, header, new FileInfo(path).Length) is { } flaw)
                    throw new LinuxKitException($"{format} image '{path}' cannot boot: {flaw}.");
                break;
        }
        WarnOnMisleadingExtension(path, format, logger);
        return new LinuxKitImage { Format = format, Path = path, Content = InspectBoot(path, format) };
    }

    private static BootContent InspectBoot(string path, ImageFormat format)
    {
        try
        {
            using var disk = VirtualDisk.Open(path, format);
            return disk is null ? BootContent.Unknown($"a {format} image's boot records are not read") : BootContent.Inspect(format, disk);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxKitException($"Cannot read image '{path}': {e.Message}", e);
        }
    }

    private static LinuxKitImage ResolvePrefix(string prefix)
    {
        var kernel = prefix + KernelSuffix;
        var initrd = prefix + "-initrd.img";
        var cmdline = prefix + "-cmdline";
        var architecture = KernelHeader.Architecture(ReadHeader(kernel))
            ?? throw new LinuxKitException($"Kernel '{kernel}' is not a Linux kernel for x86_64 (bzImage) or arm64 (Image, plain or gzip-compressed): its boot header signature is missing.");
        if (!File.Exists(initrd))
            throw new LinuxKitException($"Kernel+initrd image '{prefix}' has no initrd: '{initrd}' does not exist.");
        if (!ImageSignature.IsInitrd(ReadHeader(initrd)))
            throw new LinuxKitException($"Initrd '{initrd}' is not a cpio archive (plain, gzip, xz, zstd, lz4 or bzip2).");
        var commandLine = File.Exists(cmdline) ? File.ReadAllText(cmdline).Trim() : DefaultCommandLine;
        return new LinuxKitImage
        {
            Format = ImageFormat.KernelInitrd, Path = kernel, Initrd = initrd, CommandLine = commandLine, Content = BootContent.OfKernel(architecture),
        };
    }

    private static byte[] ReadHeader(string path)
    {
        try
        {
            return ImageSignature.ReadHeader(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxKitException($"Cannot read image '{path}': {e.Message}", e);
        }
    }

    // A truncated download or copy is the usual corrupt ISO: its primary volume descriptor
    // states a size the file does not have.
    private static void CheckIsoLength(string path, ReadOnlySpan<byte> header)
    {
        const int descriptor = 0x8000;
        if (header.Length < descriptor + 130) throw new LinuxKitException($"ISO image '{path}' is truncated: it ends inside its volume descriptor.");
        long blocks = BinaryPrimitives.ReadInt32LittleEndian(header.Slice(descriptor + 80, 4));
        long blockSize = BinaryPrimitives.ReadInt16LittleEndian(header.Slice(descriptor + 128, 2));
        var expected = blocks * blockSize;
        var actual = new FileInfo(path).Length;
        if (expected > actual)
            throw new LinuxKitException($"ISO image '{path}' is truncated or damaged: its volume descriptor says {expected} bytes, the file has {actual}.");
    }

    private static void WarnOnMisleadingExtension(string path, ImageFormat format, ILogger? logger)
    {
        var extension = System.IO.Path.GetExtension(path).TrimStart('.').ToUpperInvariant();
        ImageFormat? claimed = extension switch
        {
            "ISO" => ImageFormat.Iso,
            "QCOW2" => ImageFormat.Qcow2,
            "VMDK" => ImageFormat.Vmdk,
            "RAW" or "IMG" => ImageFormat.Raw,
            _ => null,
        };
        if (claimed is { } c && c != format)
            logger?.LogWarning("Image {Path} is named like {Claimed} but its content is {Format}; booting it as {Format}.", path, c, format, format);
    }
}
