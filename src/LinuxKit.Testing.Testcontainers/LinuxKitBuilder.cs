using DotNet.Testcontainers.Configurations;
using LinuxKit.Testing.Hypervisors;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// Builds a <see cref="LinuxKitContainer"/>, the way Testcontainers' <c>ContainerBuilder</c>
/// builds a Docker container. Immutable: every <c>With</c> method returns a new builder.
/// </summary>
/// <example>
/// <code>
/// await using var vm = new LinuxKitBuilder()
///     .WithImage("linuxkit.iso")
///     .WithPortBinding(80, assignRandomHostPort: true)
///     .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(r => r.ForPort(80)))
///     .Build();
/// await vm.StartAsync();
/// var port = vm.GetMappedPublicPort(80);
/// </code>
/// </example>
public sealed class LinuxKitBuilder
{
    /// <summary>A builder with the defaults (1024 MB, 1 CPU, a fresh SSH key, a 5-minute start-up limit).</summary>
    public LinuxKitBuilder()
        : this(new LinuxKitConfiguration())
    {
    }

    private LinuxKitBuilder(LinuxKitConfiguration configuration) => Configuration = configuration;

    /// <summary>What this builder collected so far.</summary>
    public LinuxKitConfiguration Configuration { get; }

    /// <summary>The LinuxKit image: a file (ISO, qcow2, VMDK, raw) or the prefix of a kernel+initrd output.</summary>
    public LinuxKitBuilder WithImage(string image) => new(Configuration with { Image = image });

    /// <summary>Names the VM; the name must be unique among running VMs.</summary>
    public LinuxKitBuilder WithName(string name) => WithOptions(o => o with { Name = name });

    /// <summary>The VM's memory in MB.</summary>
    public LinuxKitBuilder WithMemory(int megabytes) => WithOptions(o => o with { Memory = megabytes });

    /// <summary>The VM's virtual CPU count.</summary>
    public LinuxKitBuilder WithCpus(int cpus) => WithOptions(o => o with { Cpus = cpus });

    /// <summary>
    /// Publishes a guest TCP port on 127.0.0.1: on a free host port when
    /// <paramref name="assignRandomHostPort"/> is true (read it with
    /// <see cref="LinuxKitContainer.GetMappedPublicPort(int)"/>), else on the same port number.
    /// </summary>
    public LinuxKitBuilder WithPortBinding(int guestPort, bool assignRandomHostPort = false) =>
        WithPortBinding(assignRandomHostPort ? 0 : guestPort, guestPort);

    /// <summary>Publishes guest TCP port <paramref name="guestPort"/> on host port <paramref name="hostPort"/> of 127.0.0.1.</summary>
    public LinuxKitBuilder WithPortBinding(int hostPort, int guestPort) =>
        WithOptions(o => o with { Ports = [.. o.Ports, new PortMapping(hostPort, guestPort)] });

    /// <summary>
    /// Shares a host folder with the guest over 9p, mounted at <paramref name="guestPath"/>. The
    /// image's kernel needs 9p support (LinuxKit's do; Debian's cloud kernel does not).
    /// </summary>
    public LinuxKitBuilder WithBindMount(string hostPath, string guestPath) =>
        WithOptions(o => o with { Volumes = new Dictionary<string, string>(o.Volumes) { [hostPath] = guestPath } });

    /// <summary>Uses a private key the image already accepts instead of a fresh one.</summary>
    public LinuxKitBuilder WithSshKey(string privateKeyPath) => WithOptions(o => o with { SshKey = privateKeyPath });

    /// <summary>The user to log in as (default root).</summary>
    public LinuxKitBuilder WithSshUser(string user) => WithOptions(o => o with { SshUser = user });

    /// <summary>A fixed host port for the guest's SSH server (by default a free one).</summary>
    public LinuxKitBuilder WithSshPort(int hostPort) => WithOptions(o => o with { SshPort = hostPort });

    /// <summary>How long the VM may take to answer over SSH (default 2 minutes), within the startup timeout.</summary>
    public LinuxKitBuilder WithBootTimeout(TimeSpan timeout) => WithOptions(o => o with { BootTimeout = timeout });

    /// <summary>
    /// Whether the VM may be restored from a warm-start template instead of booting (on by
    /// default; see <see cref="RunOptions.WarmStart"/>).
    /// </summary>
    public LinuxKitBuilder WithWarmStart(bool enabled = true) => WithOptions(o => o with { WarmStart = enabled });

    /// <summary>
    /// Boot cold rather than hand out a warm-start clone whose clock and random state could not be
    /// renewed (<see cref="RunOptions.UniqueClones"/>).
    /// </summary>
    /// <param name="enabled">False hands such clones out, with a warning (the default).</param>
    public LinuxKitBuilder WithUniqueClones(bool enabled = true) => WithOptions(o => o with { UniqueClones = enabled });

    /// <summary>
    /// Have QEMU always load an ISO's or BIOS disk's kernel itself, skipping firmware and boot
    /// loader, or never (<see cref="RunOptions.DirectKernelBoot"/>). Not called, it does so where
    /// the boot loader would do nothing more.
    /// </summary>
    /// <param name="enabled">False always boots the image through its firmware and boot loader.</param>
    public LinuxKitBuilder WithDirectKernelBoot(bool enabled = true) => WithOptions(o => o with { DirectKernelBoot = enabled });

    /// <summary>Boots with this firmware instead of the one read from the image (<see cref="RunOptions.Firmware"/>).</summary>
    public LinuxKitBuilder WithFirmware(Firmware firmware) => WithOptions(o => o with { Firmware = firmware });

    /// <summary>Runs the guest as this architecture instead of the one read from the image (<see cref="RunOptions.Architecture"/>).</summary>
    public LinuxKitBuilder WithArchitecture(GuestArchitecture architecture) => WithOptions(o => o with { Architecture = architecture });

    /// <summary>Which hypervisor runs the VM (default: LINUXKIT_TESTING_HYPERVISOR, else detected).</summary>
    public LinuxKitBuilder WithHypervisor(HypervisorKind hypervisor) => WithManagerOptions(m => m with { Hypervisor = hypervisor });

    /// <summary>Changes any of the VM's <see cref="RunOptions"/>, e.g. <c>WithOptions(o => o with { Memory = 512 })</c>.</summary>
    public LinuxKitBuilder WithOptions(Func<RunOptions, RunOptions> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new(Configuration with { Options = change(Configuration.Options) });
    }

    /// <summary>Changes any of the manager's <see cref="LinuxKitManagerOptions"/> (QEMU binary, accelerator, Hyperkit settings, ...).</summary>
    public LinuxKitBuilder WithManagerOptions(Func<LinuxKitManagerOptions, LinuxKitManagerOptions> change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new(Configuration with { ManagerOptions = change(Configuration.ManagerOptions) });
    }

    /// <summary>
    /// Adds wait strategies (Testcontainers' <c>Wait.ForUnixContainer()...</c>), run in order once
    /// the VM answers over SSH. Calls add up.
    /// </summary>
    public LinuxKitBuilder WithWaitStrategy(IWaitForContainerOS waitStrategy)
    {
        ArgumentNullException.ThrowIfNull(waitStrategy);
        return new(Configuration with { WaitStrategies = [.. Configuration.WaitStrategies, waitStrategy] });
    }

    /// <summary>Where boot progress and diagnostics go.</summary>
    public LinuxKitBuilder WithLogger(ILogger logger) => WithManagerOptions(m => m with { Logger = logger });

    /// <summary>Copies the serial console, as the VM writes it, to the consumer's stdout stream.</summary>
    public LinuxKitBuilder WithOutputConsumer(IOutputConsumer outputConsumer) => new(Configuration with { OutputConsumer = outputConsumer });

    /// <summary>How long <c>StartAsync</c> may take in all: boot to SSH and every wait strategy (default 5 minutes).</summary>
    public LinuxKitBuilder WithStartupTimeout(TimeSpan timeout) => new(Configuration with { StartupTimeout = timeout });

    /// <summary>
    /// Stops the VM with an ACPI power-off request and waits for the guest to power off (exit
    /// code 0), as <c>docker stop</c> waits for a container; by default the VM is ended at once
    /// (exit code 137), since its disk is a throwaway overlay.
    /// </summary>
    public LinuxKitBuilder WithGracefulStop(bool graceful = true) =>
        WithOptions(o => o with { StopMode = graceful ? StopMode.Graceful : StopMode.Fast });

    /// <summary>Keeps the VM's state (logs, keys, disk overlay) under this folder instead of the default.</summary>
    public LinuxKitBuilder WithStateDirectory(string path) => WithManagerOptions(m => m with { StateDirectory = path });

    /// <summary>Checks the configuration and creates the container; nothing boots until <c>StartAsync</c>.</summary>
    /// <exception cref="ArgumentException">An option is missing or out of range; the message names it.</exception>
    public LinuxKitContainer Build()
    {
        if (string.IsNullOrWhiteSpace(Configuration.Image))
            throw new ArgumentException("No image: call WithImage with a LinuxKit image file (ISO, qcow2, VMDK, raw) or a kernel+initrd prefix.", nameof(Configuration));
        if (Configuration.StartupTimeout <= TimeSpan.Zero)
            throw new ArgumentException($"WithStartupTimeout got {Configuration.StartupTimeout}: give a positive time.", nameof(Configuration));
        try
        {
            Configuration.Options.Validate();
        }
        catch (LinuxKitException e)
        {
            throw new ArgumentException(e.Message, nameof(Configuration), e);
        }
        return new LinuxKitContainer(Configuration);
    }
}
