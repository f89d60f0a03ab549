namespace LinuxKit.Testing.Hypervisors;

/// <summary>Settings for running VMs under Hyperkit.</summary>
public sealed record HyperkitOptions
{
    /// <summary>The hyperkit binary (default: LINUXKIT_TESTING_HYPERKIT, else from PATH).</summary>
    public string? Binary { get; init; }

    /// <summary>
    /// EFI firmware (a UEFI.fd) for booting ISOs: hyperkit boots an ISO only through a bootrom,
    /// and only LinuxKit's iso-efi output. Not needed for kernel+initrd or raw disks.
    /// </summary>
    public string? Firmware { get; init; }

    /// <summary>How the VM is networked (default VPNKit, which can publish ports).</summary>
    public HyperkitNetworking Networking { get; init; } = HyperkitNetworking.VpnKit;

    /// <summary>The vpnkit binary (default: from PATH).</summary>
    public string? VpnKit { get; init; }

    /// <summary>The vpnkit-expose-port binary that publishes ports (default: from PATH).</summary>
    public string? VpnKitExposePort { get; init; }

    /// <summary>qemu-img, which converts qcow2 and VMDK images to the raw disks hyperkit reads (default: from PATH).</summary>
    public string? QemuImg { get; init; }
}
