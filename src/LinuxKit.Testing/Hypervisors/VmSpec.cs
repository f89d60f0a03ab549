using LinuxKit.Testing.Images;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>Everything a hypervisor needs to start one VM; paths are absolute.</summary>
internal sealed record VmSpec
{
    public required string Id { get; init; }
    public required LinuxKitImage Image { get; init; }

    /// <summary>The disk the VM boots (an overlay or a converted copy); null for ISO and kernel+initrd.</summary>
    public string? BootDisk { get; init; }
    public required int MemoryMb { get; init; }
    public required int Cpus { get; init; }
    public required int SshPort { get; init; }
    public IReadOnlyList<PortForward> Ports { get; init; } = [];
    public IReadOnlyList<VolumeShare> Volumes { get; init; } = [];

    /// <summary>The guest may reach nothing outside itself (see <see cref="RunOptions.RestrictNetwork"/>).</summary>
    public bool RestrictNetwork { get; init; }

    /// <summary>The VM's folder and the files in it (console, logs, pid file, sockets, metadata).</summary>
    public required VmFiles Files { get; init; }
}
