namespace LinuxKit.Testing.Images;

/// <summary>How one VM boots: its architecture and whether under UEFI, and why.</summary>
/// <param name="Architecture">The guest's architecture.</param>
/// <param name="Uefi">
/// True: UEFI firmware (pflash). False: on x86_64 SeaBIOS, on arm64 the kernel loaded directly
/// (only a kernel+initrd image boots so there).
/// </param>
/// <param name="Reason">Why, when the choice was made from the image and may surprise; else null.</param>
internal sealed record FirmwareChoice(GuestArchitecture Architecture, bool Uefi, string? Reason)
{
    /// <summary>Decides how <paramref name="image"/> boots with the caller's requests.</summary>
    /// <exception cref="LinuxKitException">The requests cannot boot this image (BIOS on arm64).</exception>
    public static FirmwareChoice Decide(LinuxKitImage image, Firmware firmware, GuestArchitecture architecture)
    {
        var content = image.Content;
        var arch = architecture == GuestArchitecture.Auto ? content.Architecture : architecture;
        if (firmware == Firmware.Bios && arch == GuestArchitecture.Arm64)
            throw new LinuxKitException($"Firmware is Bios but '{image.Path}' is an arm64 image: arm64 has no BIOS. Use Firmware Auto or Uefi.");
        if (firmware != Firmware.Auto) return new FirmwareChoice(arch, firmware == Firmware.Uefi, null);
        if (image.Format == ImageFormat.KernelInitrd) return new FirmwareChoice(arch, false, null);
        if (arch == GuestArchitecture.Arm64) return new FirmwareChoice(arch, true, $"arm64 disks and ISOs boot under UEFI ({content.Evidence})");
        return (content.Bios, content.Uefi) switch
        {
            (true, true) => new FirmwareChoice(arch, false, $"booting under BIOS, which is faster: {content.Evidence}"),
            (false, true) => new FirmwareChoice(arch, true, $"booting under UEFI: {content.Evidence}"),
            (true, false) => new FirmwareChoice(arch, false, null),
            _ => new FirmwareChoice(arch, false, $"booting under BIOS: {content.Evidence}"),
        };
    }
}
