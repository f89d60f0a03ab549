namespace LinuxKit.Testing;

/// <summary>The firmware a VM boots with.</summary>
public enum Firmware
{
    /// <summary>
    /// Decide from the image: an ISO's El Torito boot catalog, a disk's partition table, the
    /// guest's architecture. When an image boots under both, BIOS (it boots faster).
    /// </summary>
    Auto,

    /// <summary>BIOS (SeaBIOS under QEMU). x86_64 guests only.</summary>
    Bios,

    /// <summary>UEFI (EDK2: OVMF for x86_64, AAVMF for arm64), found through QEMU's firmware descriptors.</summary>
    Uefi,
}
