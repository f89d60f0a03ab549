using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Images;

/// <summary>
/// The kernel, initrd and command line an ISO's or BIOS disk's ISOLINUX/SYSLINUX would start,
/// found in the image (<see cref="RunOptions.DirectKernelBoot"/>): QEMU loads them itself and
/// the firmware's disk reads and the boot loader are skipped, while the guest sees the same
/// command line and the same disks.
/// </summary>
/// <param name="Source">Where the entry was read, for messages ("isolinux/isolinux.cfg on the ISO").</param>
/// <param name="Kernel">The kernel's bytes in the image.</param>
/// <param name="Initrd">The initrd's bytes in the image; null when the entry loads none.</param>
/// <param name="CommandLine">The kernel command line, as the boot loader would pass it.</param>
/// <param name="BootLoaderDoesMore">The configuration's first line that does more than start the entry (<see cref="SyslinuxMenu.DoesMore"/>).</param>
internal sealed record DirectKernel(string Source, IReadOnlyList<FileRun> Kernel, IReadOnlyList<FileRun>? Initrd, string CommandLine, string? BootLoaderDoesMore = null)
{
    private const int MaxConfiguration = 1 << 20;

    /// <summary>
    /// <paramref name="image"/> with its boot loader's entry, to boot directly under
    /// <paramref name="boot"/>; a kernel+initrd image as it is (it boots so already).
    /// </summary>
    /// <exception cref="LinuxKitException">The entry cannot be found or read; the message says why and what to do.</exception>
    public static LinuxKitImage Apply(LinuxKitImage image, FirmwareChoice boot)
    {
        if (image.Format == ImageFormat.KernelInitrd) return image;
        string Refuse(string why) => $"RunOptions.DirectKernelBoot cannot boot '{image.Path}' directly: {why}. Leave DirectKernelBoot unset or false to boot it through its firmware and boot loader.";
        if (boot.Architecture != GuestArchitecture.X64)
            throw new LinuxKitException(Refuse("it is an arm64 image, and only x86_64 ISOLINUX/SYSLINUX images are read"));
        if (boot.Uefi)
            throw new LinuxKitException(Refuse("it boots under UEFI, and only ISOLINUX/SYSLINUX images booted under BIOS are read"));
        try
        {
            using var disk = VirtualDisk.Open(image.Path, image.Format)
                ?? throw new InvalidDataException($"the files inside a {image.Format} image are not read (convert it to qcow2 with qemu-img convert)");
            return image with { DirectKernel = Read(disk, image.Format) };
        }
        catch (InvalidDataException e)
        {
            throw new LinuxKitException(Refuse(e.Message), e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxKitException($"Cannot read image '{image.Path}': {e.Message}", e);
        }
    }

    /// <summary>
    /// <paramref name="image"/> to boot directly under <paramref name="boot"/> when that changes
    /// nothing the guest or its console sees (RunOptions.DirectKernelBoot left unset): an x86_64
    /// BIOS ISO or disk whose ISOLINUX/SYSLINUX configuration only starts its entry, at once.
    /// Otherwise <paramref name="image"/> as it is, booted through its firmware, and
    /// <paramref name="firmwareBecause"/> says why.
    /// </summary>
    public static LinuxKitImage ApplyWhereUnchanged(LinuxKitImage image, FirmwareChoice boot, out string? firmwareBecause)
    {
        firmwareBecause = null;
        if (image.Format == ImageFormat.KernelInitrd) return image;
        if (boot.Architecture != GuestArchitecture.X64 || boot.Uefi)
        {
            firmwareBecause = boot.Uefi ? "it boots under UEFI" : "it is an arm64 image";
            return image;
        }
        try
        {
            using var disk = VirtualDisk.Open(image.Path, image.Format);
            if (disk is null)
            {
                firmwareBecause = $"the files inside a {image.Format} image are not read";
                return image;
            }
            var direct = Read(disk, image.Format);
            if (direct.BootLoaderDoesMore is { } line)
            {
                firmwareBecause = $"{direct.Source} does more than start its kernel ('{line}')";
                return image;
            }
            return image with { DirectKernel = direct };
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            firmwareBecause = e.Message;
            return image;
        }
    }

    /// <summary>The entry of the ISO or disk in <paramref name="disk"/>.</summary>
    /// <exception cref="InvalidDataException">Why there is none that can be booted directly.</exception>
    internal static DirectKernel Read(VirtualDisk disk, ImageFormat format)
    {
        if (format == ImageFormat.Iso)
        {
            var iso = IsoFileSystem.Open(disk) ?? throw new InvalidDataException("it has no ISO 9660 volume descriptor");
            return Read(iso, SyslinuxMenu.IsoConfigurations, "on the ISO");
        }
        var table = PartitionTable.Read(disk) ?? throw new InvalidDataException("its first sector is no boot sector");
        var tried = new List<string>();
        foreach (var partition in table.BootOrder())
        {
            var number = partition.Number;
            if (FatFileSystem.Open(disk, partition.Offset) is not { } fat)
            {
                tried.Add($"partition {number} holds no FAT file system");
                continue;
            }
            try
            {
                return Read(fat, SyslinuxMenu.DiskConfigurations, $"in partition {number}");
            }
            catch (InvalidDataException e)
            {
                tried.Add($"partition {number}: {e.Message}");
            }
        }
        throw new InvalidDataException(tried.Count == 0 ? "its partition table lists no partition" : string.Join("; ", tried));
    }

    private static DirectKernel Read(ImageFileSystem files, IReadOnlyList<string> configurations, string where)
    {
        foreach (var path in configurations)
        {
            if (files.ReadAll(path, MaxConfiguration) is not { } text) continue;
            var source = $"{path.TrimStart('/')} {where}";
            var menu = SyslinuxMenu.Parse(System.Text.Encoding.UTF8.GetString(text), source);
            var kernel = files.Find(menu.Kernel) ?? throw new InvalidDataException($"{source} boots {menu.Kernel}, which {files.Description} does not hold");
            var initrd = menu.Initrd is null ? null : files.Find(menu.Initrd) ?? throw new InvalidDataException($"{source} loads the initrd {menu.Initrd}, which {files.Description} does not hold");
            if (KernelHeader.Architecture(files.Head(kernel, ImageSignature.HeaderLength)) != GuestArchitecture.X64)
                throw new InvalidDataException($"{source} boots {menu.Kernel}, which is no x86_64 Linux kernel (bzImage)");
            return new DirectKernel(source, kernel, initrd, menu.CommandLine, menu.DoesMore);
        }
        throw new InvalidDataException($"{files.Description} {where} has no ISOLINUX/SYSLINUX configuration ({string.Join(", ", configurations)})");
    }

    /// <summary>Copies the kernel and initrd out of the image into <paramref name="files"/>' folder.</summary>
    /// <exception cref="LinuxKitException">The image can no longer be read as it was.</exception>
    public async Task ExtractAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken)
    {
        try
        {
            using var disk = VirtualDisk.Open(image.Path, image.Format) ?? throw new InvalidDataException($"a {image.Format} image's files are not read");
            await CopyAsync(disk, Kernel, files.Kernel, cancellationToken).ConfigureAwait(false);
            if (Initrd is not null) await CopyAsync(disk, Initrd, files.Initrd, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            throw new LinuxKitException($"Cannot copy the kernel out of '{image.Path}' ({Source}): {e.Message}. Was the image changed while in use?", e);
        }
    }

    private static async Task CopyAsync(VirtualDisk disk, IReadOnlyList<FileRun> runs, string path, CancellationToken cancellationToken)
    {
        var file = PrivateFiles.Create(path);
        await using (file.ConfigureAwait(false))
        {
            await ImageFileSystem.CopyAsync(disk, runs, file, cancellationToken).ConfigureAwait(false);
        }
    }
}
