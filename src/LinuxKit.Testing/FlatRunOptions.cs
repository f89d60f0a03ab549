using LinuxKit.Testing.Hypervisors;

namespace LinuxKit.Testing;

/// <summary>
/// Run options as the adapters that cannot carry objects receive them: an attribute's arguments,
/// an MSBuild task's parameters, a command line's options. Whole seconds, switches, and ports
/// and volumes as "HOST:GUEST" text. One mapping onto <see cref="RunOptions"/>, so every such
/// adapter reaches the same options the same way, and an error names the adapter's spelling.
/// </summary>
internal sealed record FlatRunOptions
{
    private static readonly RunOptions Defaults = new();

    /// <summary>The adapter, as errors name it (e.g. "LinuxKitImage", "StartLinuxKit", "run").</summary>
    public required string Source { get; init; }

    /// <summary>How errors name the ports, e.g. "--publish"; by default "<see cref="Source"/> Ports".</summary>
    public string? PortsSpelling { get; init; }

    /// <summary>How errors name the volumes, e.g. "--volume"; by default "<see cref="Source"/> Volumes".</summary>
    public string? VolumesSpelling { get; init; }

    public string? Name { get; init; }
    public int Memory { get; init; } = Defaults.Memory;
    public int Cpus { get; init; } = Defaults.Cpus;
    public int BootTimeoutSeconds { get; init; } = (int)Defaults.BootTimeout.TotalSeconds;
    public bool GracefulStop { get; init; }
    public bool WarmStart { get; init; } = Defaults.WarmStart;
    public bool UniqueClones { get; init; }
    public bool? DirectKernelBoot { get; init; }
    public bool RestrictNetwork { get; init; }
    public bool Detach { get; init; }

    /// <summary>Forwarded ports, "HOST:GUEST" each (HOST 0 picks a free one).</summary>
    public IReadOnlyList<string> Ports { get; init; } = [];

    /// <summary>Guest ports forwarded from free host ports.</summary>
    public IReadOnlyList<int> GuestPorts { get; init; } = [];

    /// <summary>Shared folders, "HOST_FOLDER:GUEST_PATH" each.</summary>
    public IReadOnlyList<string> Volumes { get; init; } = [];

    public string? SshKey { get; init; }
    public string SshUser { get; init; } = Defaults.SshUser;

    /// <summary>"auto", "bios" or "uefi"; empty for auto (<see cref="RunOptions.Firmware"/>).</summary>
    public string? Firmware { get; init; }

    /// <summary>"auto", "x64" (or "amd64", "x86_64") or "arm64" (or "aarch64"); empty for auto (<see cref="RunOptions.Architecture"/>).</summary>
    public string? Architecture { get; init; }
    public int SshPort { get; init; } = Defaults.SshPort;

    /// <summary>
    /// These settings over <paramref name="options"/>: ports are added to its ports, volumes
    /// to (and over) its volumes, the rest replaces. Relative files (SSH key, volume folders)
    /// go through <paramref name="resolvePath"/>.
    /// </summary>
    /// <exception cref="LinuxKitException">A port or volume is not written as documented (the message names <see cref="Source"/>).</exception>
    public RunOptions ApplyTo(RunOptions options, Func<string, string> resolvePath)
    {
        var volumes = options.Volumes.ToDictionary(v => v.Key, v => v.Value);
        foreach (var (host, guest) in Volumes.Select(v => VolumeMapping.Parse(v, VolumesSpelling ?? $"{Source} Volumes"))) volumes[resolvePath(host)] = guest;
        return options with
        {
            Name = string.IsNullOrEmpty(Name) ? options.Name : Name,
            Detach = Detach || options.Detach,
            Memory = Memory,
            Cpus = Cpus,
            BootTimeout = TimeSpan.FromSeconds(BootTimeoutSeconds),
            StopMode = GracefulStop ? StopMode.Graceful : StopMode.Fast,
            WarmStart = WarmStart,
            UniqueClones = UniqueClones,
            DirectKernelBoot = DirectKernelBoot,
            RestrictNetwork = RestrictNetwork || options.RestrictNetwork,
            Ports = [.. options.Ports, .. GuestPorts.Select(p => new PortMapping(0, p)), .. Ports.Select(ParsePort)],
            Volumes = volumes,
            SshKey = string.IsNullOrEmpty(SshKey) ? options.SshKey : resolvePath(SshKey),
            SshUser = SshUser,
            SshPort = SshPort,
            Firmware = string.IsNullOrEmpty(Firmware) ? options.Firmware : ParseFirmware(Firmware),
            Architecture = string.IsNullOrEmpty(Architecture) ? options.Architecture : ParseArchitecture(Architecture),
        };
    }

    private Firmware ParseFirmware(string text) =>
        Enum.TryParse<Firmware>(text, ignoreCase: true, out var firmware) && Enum.IsDefined(firmware) && !int.TryParse(text, out _)
            ? firmware
            : throw new LinuxKitException($"{Source}: Firmware is '{text}': use auto, bios or uefi.");

    private GuestArchitecture ParseArchitecture(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => GuestArchitecture.Auto,
        "x64" or "amd64" or "x86_64" => GuestArchitecture.X64,
        "arm64" or "aarch64" => GuestArchitecture.Arm64,
        _ => throw new LinuxKitException($"{Source}: Architecture is '{text}': use auto, x64 (amd64, x86_64) or arm64 (aarch64)."),
    };

    /// <summary>A hypervisor written as text ("qemu", "hyperkit", "kubevirt"; empty for detection).</summary>
    /// <exception cref="LinuxKitException">It names no hypervisor.</exception>
    public static HypervisorKind ParseHypervisor(string? text, string source)
    {
        if (string.IsNullOrEmpty(text)) return HypervisorKind.Auto;
        return Enum.TryParse<HypervisorKind>(text, ignoreCase: true, out var kind) && Enum.IsDefined(kind) && !int.TryParse(text, out _)
            ? kind
            : throw new LinuxKitException($"{source}: Hypervisor is '{text}': use {string.Join(", ", Enum.GetNames<HypervisorKind>().Where(n => n != nameof(HypervisorKind.Auto)).Select(n => n.ToLowerInvariant()))}, or leave it unset to detect.");
    }

    private PortMapping ParsePort(string text)
    {
        try
        {
            return PortMapping.Parse(text);
        }
        catch (LinuxKitException e)
        {
            throw new LinuxKitException($"{PortsSpelling ?? $"{Source} Ports"}: {e.Message}", e);
        }
    }
}
