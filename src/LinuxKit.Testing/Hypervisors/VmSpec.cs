using LinuxKit.Testing.Images;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>Everything a hypervisor needs to start one VM; paths are absolute.</summary>
internal sealed record VmSpec
{
    public required string Id { get; init; }
    public required LinuxKitImage Image { get; init; }

    /// <summary>The guest's architecture and firmware, from the image and the caller's options (by default x86_64 under BIOS).</summary>
    public FirmwareChoice Boot { get; init; } = new(GuestArchitecture.X64, Uefi: false, Reason: null);

    /// <summary>The disk the VM boots (an overlay or a converted copy); null for ISO and kernel+initrd.</summary>
    public string? BootDisk { get; init; }

    /// <summary>
    /// The kernel QEMU loads itself for an ISO or disk booted directly (copied out of the image,
    /// see <see cref="DirectKernel"/>); null when the firmware boots the image.
    /// </summary>
    public KernelFiles? Kernel { get; init; }
    public required int MemoryMb { get; init; }
    public required int Cpus { get; init; }
    public required int SshPort { get; init; }
    public IReadOnlyList<PortForward> Ports { get; init; } = [];
    public IReadOnlyList<VolumeShare> Volumes { get; init; } = [];

    /// <summary>The guest may reach nothing outside itself (see <see cref="RunOptions.RestrictNetwork"/>).</summary>
    public bool RestrictNetwork { get; init; }

    /// <summary>
    /// The LinuxKit metadata (JSON) the guest reads: QEMU and Hyperkit attach it as the
    /// <c>config</c> CD-ROM the files name, KubeVirt passes it as cloud-init user-data.
    /// </summary>
    public ReadOnlyMemory<byte> Metadata { get; init; }

    /// <summary>The VM's folder and the files in it (console, logs, pid file, sockets, metadata).</summary>
    public required VmFiles Files { get; init; }

    /// <summary>
    /// The metadata CD-ROM QEMU and Hyperkit attach: the folder's (<see cref="VmFiles.MetadataIso"/>)
    /// unless set. A warm-start template runs in the folder of the VM it is made for, which it
    /// may become, but carries its own metadata and UEFI variables, which its clones inherit.
    /// </summary>
    public string MetadataIso
    {
        get => _metadataIso ?? Files.MetadataIso;
        init => _metadataIso = value;
    }

    /// <summary>The writable UEFI variables store: the folder's (<see cref="VmFiles.UefiVars"/>) unless set (see <see cref="MetadataIso"/>).</summary>
    public string UefiVars
    {
        get => _uefiVars ?? Files.UefiVars;
        init => _uefiVars = value;
    }

    private readonly string? _metadataIso;
    private readonly string? _uefiVars;

    /// <summary>
    /// Guest RAM held in a file instead of anonymous memory: a warm-start template writes its RAM
    /// there, a clone maps the template's copy-on-write. Null for an ordinary boot.
    /// </summary>
    public MemoryFile? MemoryFile { get; init; }

    /// <summary>
    /// The VM does not boot: it waits for a saved state to be loaded over its control socket
    /// (a warm-start clone).
    /// </summary>
    public bool Incoming { get; init; }

    /// <summary>
    /// The spec of a VM in <paramref name="files"/>' folder run as <paramref name="options"/> say;
    /// the SSH port and forwards are filled in when the ports are reserved.
    /// </summary>
    public static VmSpec Of(VmFiles files, LinuxKitImage image, string? bootDisk, RunOptions options) => new()
    {
        Id = files.Id,
        Image = image,
        Boot = FirmwareChoice.Decide(image, options.Firmware, options.Architecture),
        BootDisk = bootDisk,
        Kernel = KernelFiles.In(files, image),
        MemoryMb = options.Memory,
        Cpus = options.Cpus,
        SshPort = 0,
        RestrictNetwork = options.RestrictNetwork,
        Files = files,
    };
}

/// <summary>A file that holds guest RAM.</summary>
/// <param name="Path">The file.</param>
/// <param name="Shared">
/// True: the guest's writes reach the file (a template being made). False: the file is mapped
/// copy-on-write, so any number of clones read it and none changes it.
/// </param>
internal sealed record MemoryFile(string Path, bool Shared);

/// <summary>A kernel, its initrd (if any) and command line, as files QEMU loads.</summary>
internal sealed record KernelFiles(string Kernel, string? Initrd, string CommandLine)
{
    /// <summary>Where <paramref name="files"/>' folder holds the kernel of <paramref name="image"/> booted directly; null when it boots through its firmware.</summary>
    public static KernelFiles? In(VmFiles files, LinuxKitImage image) =>
        image.DirectKernel is { } direct ? new KernelFiles(files.Kernel, direct.Initrd is null ? null : files.Initrd, direct.CommandLine) : null;
}
