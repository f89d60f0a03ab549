using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>A host port forwarded (on 127.0.0.1 only) to a guest TCP port.</summary>
internal readonly record struct PortForward(int HostPort, int GuestPort);

/// <summary>A host folder shared with the guest over 9p, mounted by the guest at GuestPath.</summary>
internal readonly record struct VolumeShare(string Tag, string HostPath, string GuestPath);

/// <summary>Everything a hypervisor needs to start one VM; paths are absolute.</summary>
internal sealed record VmSpec
{
    public required string Id { get; init; }
    public required LinuxKitImage Image { get; init; }

    /// <summary>The disk the VM boots (an overlay or a converted copy); null for ISO and kernel+initrd.</summary>
    public string? BootDisk { get; init; }
    public required string MetadataIso { get; init; }
    public required int MemoryMb { get; init; }
    public required int Cpus { get; init; }
    public required int SshPort { get; init; }
    public IReadOnlyList<PortForward> Ports { get; init; } = [];
    public IReadOnlyList<VolumeShare> Volumes { get; init; } = [];
    public required string ConsoleLog { get; init; }
    public required string ControlSocket { get; init; }
    public required string PidFile { get; init; }
    public required string HypervisorLog { get; init; }
}
