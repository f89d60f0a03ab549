using LinuxKit.Testing.Hypervisors;

namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// Names the image (and options) that test fixtures boot, for a whole test assembly:
/// <c>[assembly: LinuxKitImage("os.qcow2", Memory = 512)]</c>. A relative image or SSH key path
/// is resolved from the test assembly's folder first, then from the current directory. What is
/// not set keeps the default of <see cref="RunOptions"/> and <see cref="LinuxKitManagerOptions"/>.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class, AllowMultiple = false)]
public sealed class LinuxKitImageAttribute(string image) : Attribute
{
    private static readonly RunOptions Defaults = new();

    /// <summary>The image file or kernel+initrd prefix.</summary>
    public string Image { get; } = image;

    /// <summary>Memory in MB (<see cref="RunOptions.Memory"/>).</summary>
    public int Memory { get; set; } = Defaults.Memory;

    /// <summary>Virtual CPUs (<see cref="RunOptions.Cpus"/>).</summary>
    public int Cpus { get; set; } = Defaults.Cpus;

    /// <summary>
    /// How long the VM may take to answer over SSH, in seconds (<see cref="RunOptions.BootTimeout"/>;
    /// an attribute cannot take a <see cref="TimeSpan"/>).
    /// </summary>
    public int BootTimeout { get; set; } = (int)Defaults.BootTimeout.TotalSeconds;

    /// <summary>
    /// True to stop the VM with an ACPI power-off request and wait for the guest
    /// (<see cref="StopMode.Graceful"/>); by default it is ended at once (<see cref="StopMode.Fast"/>).
    /// </summary>
    public bool GracefulStop { get; set; }

    /// <summary>
    /// False to boot the VM cold instead of restoring it from a warm-start template
    /// (<see cref="RunOptions.WarmStart"/>, on by default).
    /// </summary>
    public bool WarmStart { get; set; } = Defaults.WarmStart;

    /// <summary>
    /// True to boot cold rather than hand out a warm-start clone whose clock and random state could
    /// not be renewed (<see cref="RunOptions.UniqueClones"/>).
    /// </summary>
    public bool UniqueClones { get; set; }

    /// <summary>
    /// True to have QEMU always load an ISO's or BIOS disk's kernel itself, skipping firmware and
    /// boot loader; false never to. Unset, it does so where the boot loader would do nothing more
    /// (<see cref="RunOptions.DirectKernelBoot"/>).
    /// </summary>
    public bool DirectKernelBoot
    {
        get => DirectKernelBootSetting ?? false;
        set => DirectKernelBootSetting = value;
    }

    // Unset and false differ: unset leaves the choice to the image.
    internal bool? DirectKernelBootSetting { get; private set; }

    /// <summary>The firmware (<see cref="RunOptions.Firmware"/>); by default read from the image.</summary>
    public Firmware Firmware { get; set; }

    /// <summary>The guest's architecture (<see cref="RunOptions.Architecture"/>); by default read from the image.</summary>
    public GuestArchitecture Architecture { get; set; }

    /// <summary>Guest ports to forward to free host ports (see <see cref="SharedVm.HostPortFor"/>).</summary>
    public int[] GuestPorts { get; set; } = [];

    /// <summary>Forwarded ports as "HOST:GUEST", for fixed host ports (<see cref="PortMapping.Parse"/>).</summary>
    public string[] Ports { get; set; } = [];

    /// <summary>Host folders shared with the guest, as "HOST_FOLDER:GUEST_PATH" (<see cref="RunOptions.Volumes"/>).</summary>
    public string[] Volumes { get; set; } = [];

    /// <summary>A private key the image accepts (<see cref="RunOptions.SshKey"/>); by default a fresh key per VM.</summary>
    public string? SshKey { get; set; }

    /// <summary>The SSH user (<see cref="RunOptions.SshUser"/>).</summary>
    public string SshUser { get; set; } = Defaults.SshUser;

    /// <summary>The host port of the guest's SSH server; 0 (the default) picks a free one.</summary>
    public int SshPort { get; set; } = Defaults.SshPort;

    /// <summary>Which hypervisor runs the VM (<see cref="LinuxKitManagerOptions.Hypervisor"/>).</summary>
    public HypervisorKind Hypervisor { get; set; } = HypervisorKind.Auto;

    /// <summary>The state directory (<see cref="LinuxKitManagerOptions.StateDirectory"/>).</summary>
    public string? StateDirectory { get; set; }

    /// <summary>These settings over <paramref name="options"/>.</summary>
    /// <param name="options">The options the attribute's settings replace.</param>
    /// <param name="resolvePath">Resolves a relative file the way the image is resolved.</param>
    /// <exception cref="LinuxKitException">A port or volume is not written as documented.</exception>
    internal RunOptions ApplyTo(RunOptions options, Func<string, string> resolvePath) => new FlatRunOptions
    {
        Source = "LinuxKitImage",
        Memory = Memory,
        Cpus = Cpus,
        BootTimeoutSeconds = BootTimeout,
        GracefulStop = GracefulStop,
        WarmStart = WarmStart,
        UniqueClones = UniqueClones,
        DirectKernelBoot = DirectKernelBootSetting,
        Ports = Ports,
        GuestPorts = GuestPorts,
        Volumes = Volumes,
        SshKey = SshKey,
        SshUser = SshUser,
        SshPort = SshPort,
        Firmware = Firmware == Firmware.Auto ? null : Firmware.ToString(),
        Architecture = Architecture == GuestArchitecture.Auto ? null : Architecture.ToString(),
    }.ApplyTo(options, resolvePath);

    /// <summary>These settings over <paramref name="options"/>.</summary>
    internal LinuxKitManagerOptions ApplyTo(LinuxKitManagerOptions options) => options with
    {
        Hypervisor = Hypervisor == HypervisorKind.Auto ? options.Hypervisor : Hypervisor,
        StateDirectory = string.IsNullOrEmpty(StateDirectory) ? options.StateDirectory : StateDirectory,
    };
}
