using System.Globalization;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// Boots a LinuxKit image and returns once the VM answers over SSH. The VM outlives the build
/// step (and the build): stop it with <see cref="StopLinuxKit"/>, from a later target or build.
/// Parameters left unset keep the defaults of <see cref="RunOptions"/>.
/// </summary>
public sealed class StartLinuxKit : LinuxKitTask
{
    private static readonly RunOptions Defaults = new();

    /// <summary>An image file (.iso, .qcow2, .vmdk, .img) or a kernel+initrd prefix.</summary>
    [Required]
    public string Image { get; set; } = "";

    /// <summary>A name, usable instead of the id by the other tasks.</summary>
    public string? Name { get; set; }

    /// <summary>Memory in MB (<see cref="RunOptions.Memory"/>).</summary>
    public int Memory { get; set; } = Defaults.Memory;

    /// <summary>Virtual CPUs (<see cref="RunOptions.Cpus"/>).</summary>
    public int Cpus { get; set; } = Defaults.Cpus;

    /// <summary>Forwarded ports, "HOST:GUEST" separated by ';' (HOST 0 picks a free port), e.g. "8080:80;0:5432".</summary>
    public string? Ports { get; set; }

    /// <summary>Host folders shared with the guest over 9p: each item a host folder, with metadata GuestPath.</summary>
    public ITaskItem[] Volumes { get; set; } = [];

    /// <summary>A private key the image accepts; by default a fresh key is made for the VM.</summary>
    public string? SshKey { get; set; }

    /// <summary>The SSH user (<see cref="RunOptions.SshUser"/>); as an output, the user that logs in.</summary>
    [Output] public string SshUser { get; set; } = Defaults.SshUser;

    /// <summary>
    /// The host port (127.0.0.1) of the guest's SSH server: as an input, 0 (the default) picks a
    /// free one; as an output, the port it got.
    /// </summary>
    [Output] public int SshPort { get; set; } = Defaults.SshPort;

    /// <summary>Seconds the VM may take to answer over SSH (<see cref="RunOptions.BootTimeout"/>).</summary>
    public int BootTimeout { get; set; } = (int)Defaults.BootTimeout.TotalSeconds;

    /// <summary>qemu or hyperkit; by default LINUXKIT_TESTING_HYPERVISOR, else detected.</summary>
    public string? Hypervisor { get; set; }

    /// <summary>
    /// True to stop the VM with an ACPI power-off request wherever it is stopped without a mode
    /// (at the end of the build for <see cref="StopWhenBuildEnds"/>); by default at once.
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

    /// <summary><c>bios</c> or <c>uefi</c>; empty (the default) reads it from the image (<see cref="RunOptions.Firmware"/>).</summary>
    public string? Firmware { get; set; }

    /// <summary><c>x64</c> or <c>arm64</c>; empty (the default) reads it from the image (<see cref="RunOptions.Architecture"/>).</summary>
    public string? Architecture { get; set; }

    /// <summary>
    /// When true the VM is not detached: it is stopped when this build ends, also in a reused
    /// MSBuild node, and when the build process dies (the `dotnet test` hand-off uses this, so
    /// failing tests still stop it).
    /// </summary>
    public bool StopWhenBuildEnds { get; set; }

    /// <summary>
    /// When true the VM is not detached and lives as long as the process that runs this build:
    /// it is stopped when that process exits, and by its watchdog if it dies. This is the
    /// `dotnet test` hand-off under Microsoft Testing Platform, where `dotnet test` builds in
    /// its own process and then runs the tests, with no target after them. In an MSBuild worker
    /// node (whose end is not the tests') no VM is started (warning LKT011).
    /// </summary>
    public bool StopWhenProcessEnds { get; set; }

    /// <summary>
    /// A file to write the VM's id and state directory to, for test fixtures that cannot
    /// inherit <see cref="ExportEnvironment"/>'s variables (under Microsoft Testing Platform the
    /// tests run after the build, whose environment MSBuild has put back): the hand-off targets
    /// write it beside the test assembly. Removed when a <see cref="StopWhenProcessEnds"/> VM is
    /// stopped.
    /// </summary>
    public string? HandOffFile { get; set; }

    /// <summary>
    /// When true the VM's details are put in this build process's environment (LINUXKIT_VM_ID,
    /// LINUXKIT_TESTING_HOME, LINUXKIT_VM_SSH_PORT, LINUXKIT_VM_SSH_KEY, LINUXKIT_VM_SSH_USER), which
    /// the test processes it starts inherit; the test fixtures then use this VM.
    /// </summary>
    public bool ExportEnvironment { get; set; }

    /// <summary>The VM's id.</summary>
    [Output] public string? Id { get; private set; }

    /// <summary>The private key that logs in.</summary>
    [Output] public string? SshKeyFile { get; private set; }

    /// <summary>The hypervisor's process id.</summary>
    [Output] public int Pid { get; private set; }

    /// <summary>One item per forwarded port: ItemSpec is the host port, metadata HostPort and GuestPort.</summary>
    [Output] public ITaskItem[] ForwardedPorts { get; private set; } = [];

    /// <inheritdoc />
    private protected override async Task<bool> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (!TryReadParameters(out var options, out var managerOptions)) return false;
        if (StopWhenProcessEnds)
        {
            if (Environment.GetCommandLineArgs().Any(a => a.Contains("nodemode", StringComparison.OrdinalIgnoreCase)))
            {
                Log.LogWarningWithCodeFromResources("Task.WorkerNodeHandOff", nameof(StartLinuxKit));
                return true;
            }
            var processManager = ProcessLifetimeVms.For(this, managerOptions);
            if (!await BootAsync(processManager, options, cancellationToken).ConfigureAwait(false)) return false;
            if (!string.IsNullOrEmpty(HandOffFile)) ProcessLifetimeVms.ClearAtExit(Id!, Path.GetFullPath(HandOffFile));
            return true;
        }
        if (StopWhenBuildEnds)
        {
            // A VM tied to the build lives in a manager that MSBuild disposes when the build
            // ends; until then its watchdog stops the VM if this process dies.
            var vms = BuildLifetimeVms.For(this, managerOptions);
            vms.Log.Task = this;
            try
            {
                return await BootAsync(vms.Manager, options, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                vms.Log.Task = null;
            }
        }
        // Any other VM is detached, and the task's own manager goes with the task, whether the
        // boot worked or not.
        var manager = CreateManager(managerOptions);
        await using var managerDisposal = manager.ConfigureAwait(false);
        return await BootAsync(manager, options, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> BootAsync(LinuxKitManager manager, RunOptions options, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: booting {0}", Image);
        var vm = await manager.RunAsync(Image, options, cancellationToken).ConfigureAwait(false);
        Id = vm.Id;
        SshPort = vm.SshPort;
        SshUser = vm.SshUser;
        SshKeyFile = vm.SshKeyFile;
        Pid = vm.Pid;
        ForwardedPorts = vm.Ports.Select(p =>
        {
            var item = new TaskItem(p.Key.ToString(CultureInfo.InvariantCulture));
            item.SetMetadata("HostPort", p.Key.ToString(CultureInfo.InvariantCulture));
            item.SetMetadata("GuestPort", p.Value.ToString(CultureInfo.InvariantCulture));
            return (ITaskItem)item;
        }).ToArray();
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: VM {0} ready after {1} s (ssh {2}@{5} -p {3} -i {4})", vm.Id, Seconds(clock), vm.SshUser, vm.SshPort, vm.SshKeyFile, Networking.Loopback.Address);
        Fixtures.HandOff.Export(vm, manager.StateDirectory, HandOffFile, ExportEnvironment);
        return true;
    }

    // The parameters as the core's options, checked by the options themselves; LKT001 names
    // the first that is wrong.
    private bool TryReadParameters(out RunOptions options, out LinuxKitManagerOptions managerOptions)
    {
        options = Defaults;
        managerOptions = new LinuxKitManagerOptions();
        try
        {
            managerOptions = managerOptions with { Hypervisor = FlatRunOptions.ParseHypervisor(Hypervisor, nameof(StartLinuxKit)) };
            options = new FlatRunOptions
            {
                Source = nameof(StartLinuxKit),
                Name = Name,
                Detach = !(StopWhenBuildEnds || StopWhenProcessEnds), // otherwise the VM outlives this task and this MSBuild node
                Memory = Memory,
                Cpus = Cpus,
                Ports = (Ports ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Volumes = [.. Volumes.Select(v => $"{v.GetMetadata("FullPath")}:{GuestPathOf(v)}")],
                SshKey = SshKey,
                SshUser = SshUser,
                SshPort = SshPort,
                BootTimeoutSeconds = BootTimeout,
                GracefulStop = GracefulStop,
                WarmStart = WarmStart,
                UniqueClones = UniqueClones,
                DirectKernelBoot = DirectKernelBootSetting,
                Firmware = Firmware,
                Architecture = Architecture,
            }.ApplyTo(Defaults, path => path);
            options.Validate();
            return true;
        }
        catch (LinuxKitException e)
        {
            LogInvalidParameter(e.Message);
            return false;
        }
    }

    private static string GuestPathOf(ITaskItem volume)
    {
        var guestPath = volume.GetMetadata("GuestPath");
        return string.IsNullOrEmpty(guestPath)
            ? throw new LinuxKitException($"Volumes item '{volume.ItemSpec}' has no GuestPath metadata: write <LinuxKitVolume Include=\"{volume.ItemSpec}\" GuestPath=\"/mnt/data\" />.")
            : guestPath;
    }
}
