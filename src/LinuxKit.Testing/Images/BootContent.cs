namespace LinuxKit.Testing.Images;

/// <summary>
/// How an image's content boots: under BIOS, under UEFI (or both), and for which architecture,
/// with the evidence in words for messages. Read once, when the image is resolved.
/// </summary>
/// <param name="Architecture">The guest's architecture; x86_64 unless the content says otherwise.</param>
/// <param name="Bios">The content has a BIOS boot path (an El Torito x86 entry, MBR boot code).</param>
/// <param name="Uefi">The content has a UEFI boot path (an El Torito EFI entry, an EFI System Partition).</param>
/// <param name="Evidence">What was read, e.g. "its El Torito catalog has an EFI entry only".</param>
internal sealed record BootContent(GuestArchitecture Architecture, bool Bios, bool Uefi, string Evidence)
{
    // FAT directory entries of the removable-media loaders, as 8.3 names: "BOOTAA64.EFI",
    // "BOOTX64.EFI". Directories sit near the start of a small FAT, so a window suffices.
    private static readonly byte[] Arm64Loader = "BOOTAA64EFI"u8.ToArray();
    private static readonly byte[] X64Loader = "BOOTX64 EFI"u8.ToArray();
    private const int LoaderWindow = 8 << 20;

    /// <summary>A kernel+initrd image: the kernel is loaded directly, no boot record is read.</summary>
    public static BootContent OfKernel(GuestArchitecture architecture) => new(architecture, false, false, "a kernel is loaded directly");

    /// <summary>Content that could not be read: BIOS and x86_64, as before firmware was chosen.</summary>
    public static BootContent Unknown(string why) => new(GuestArchitecture.X64, false, false, why);

    /// <summary>How the ISO or disk in <paramref name="disk"/> boots.</summary>
    public static BootContent Inspect(ImageFormat format, VirtualDisk disk)
    {
        try
        {
            return format == ImageFormat.Iso ? InspectIso(disk) : InspectDisk(disk);
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return Unknown($"its boot records could not be read ({e.Message})");
        }
    }

    private static BootContent InspectIso(VirtualDisk disk)
    {
        if (ElToritoCatalog.Read(disk) is not { } catalog) return Unknown("it has no El Torito boot catalog");
        var arch = catalog.Efi ? LoaderArchitecture(disk, catalog.EfiImageOffset, catalog.EfiImageLength) : null;
        var entries = (catalog.Bios, catalog.Efi) switch
        {
            (true, true) => "a BIOS entry and an EFI entry",
            (true, false) => "a BIOS entry only",
            (false, true) => "an EFI entry only",
            _ => "no bootable entry",
        };
        return new BootContent(arch ?? GuestArchitecture.X64, catalog.Bios, catalog.Efi, $"its El Torito catalog has {entries}{LoaderNote(arch)}");
    }

    private static BootContent InspectDisk(VirtualDisk disk)
    {
        if (PartitionTable.Read(disk) is not { } table) return Unknown("its first sector is no boot sector");
        var arch = table.HasEsp ? LoaderArchitecture(disk, table.EspOffset, table.EspLength) : null;
        var what = (table.Gpt ? "a GPT" : "an MBR")
            + (table.HasEsp ? " with an EFI System Partition" : " without an EFI System Partition")
            + (table.BiosBootCode ? " and BIOS boot code" : " and no BIOS boot code");
        return new BootContent(arch ?? GuestArchitecture.X64, table.BiosBootCode, table.HasEsp, $"it has {what}{LoaderNote(arch)}");
    }

    private static string LoaderNote(GuestArchitecture? arch) => arch switch
    {
        GuestArchitecture.Arm64 => " holding BOOTAA64.EFI (arm64)",
        GuestArchitecture.X64 => " holding BOOTX64.EFI",
        _ => "",
    };

    // The architecture of the loader in a FAT file system at offset; null when neither is seen.
    private static GuestArchitecture? LoaderArchitecture(VirtualDisk disk, long offset, long length)
    {
        var window = disk.Read(offset, (int)(length > 2048 ? Math.Min(length, LoaderWindow) : LoaderWindow));
        if (window.AsSpan().IndexOf(Arm64Loader) >= 0) return GuestArchitecture.Arm64;
        if (window.AsSpan().IndexOf(X64Loader) >= 0) return GuestArchitecture.X64;
        return null;
    }
}
