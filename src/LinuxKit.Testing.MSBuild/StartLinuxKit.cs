using System.Globalization;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// Boots a LinuxKit image and returns once the VM answers over SSH. The VM outlives the build
/// step (and the build): stop it with <see cref="StopLinuxKit"/>, from a later target or build.
/// </summary>
public sealed class StartLinuxKit : LinuxKitTask
{
    /// <summary>An image file (.iso, .qcow2, .vmdk, .img) or a kernel+initrd prefix.</summary>
    [Required]
    public string Image { get; set; } = "";

    /// <summary>A name, usable instead of the id by the other tasks.</summary>
    public string? Name { get; set; }

    /// <summary>Memory in MB (default 1024).</summary>
    public int Memory { get; set; } = 1024;

    /// <summary>Virtual CPUs (default 1).</summary>
    public int Cpus { get; set; } = 1;

    /// <summary>Forwarded ports, "HOST:GUEST" separated by ';' (HOST 0 picks a free port), e.g. "8080:80;0:5432".</summary>
    public string? Ports { get; set; }

    /// <summary>A private key the image accepts; by default a fresh key is made for the VM.</summary>
    public string? SshKey { get; set; }

    /// <summary>Seconds the VM may take to answer over SSH (default 120).</summary>
    public int Timeout { get; set; } = 120;

    /// <summary>
    /// When true the VM is not detached: it is stopped when this build process ends, however it
    /// ends (the `dotnet test` hand-off uses this, so failing tests still stop it).
    /// </summary>
    public bool StopWhenBuildEnds { get; set; }

    /// <summary>
    /// When true the VM's details are put in this build process's environment (LINUXKIT_VM_ID,
    /// LINUXKIT_TESTING_HOME, LINUXKIT_VM_SSH_PORT, LINUXKIT_VM_SSH_KEY, LINUXKIT_VM_SSH_USER), which
    /// the test processes it starts inherit; the test fixtures then use this VM.
    /// </summary>
    public bool ExportEnvironment { get; set; }

    /// <summary>The VM's id.</summary>
    [Output] public string? Id { get; private set; }

    /// <summary>The host port (127.0.0.1) of the VM's SSH server.</summary>
    [Output] public int SshPort { get; private set; }

    /// <summary>The private key that logs in.</summary>
    [Output] public string? SshKeyFile { get; private set; }

    /// <summary>The SSH user.</summary>
    [Output] public string? SshUser { get; private set; }

    /// <summary>The hypervisor's process id.</summary>
    [Output] public int Pid { get; private set; }

    /// <summary>One item per forwarded port: ItemSpec is the host port, metadata HostPort and GuestPort.</summary>
    [Output] public ITaskItem[] ForwardedPorts { get; private set; } = [];

    /// <inheritdoc />
    protected override async Task<bool> ExecuteAsync(CancellationToken cancellationToken)
    {
        if (!TryParsePorts(Ports, out var ports)) return false;
        // A VM tied to the build lives in a manager that lives as long as this process: its
        // watchdog stops the VM when the process ends. Any other VM is detached, and the task's
        // own manager goes with the task, whether the boot worked or not.
        if (StopWhenBuildEnds) return await BootAsync(BuildLifetimeManager(StateDirectory), ports, cancellationToken).ConfigureAwait(false);
        var manager = CreateManager();
        await using var managerDisposal = manager.ConfigureAwait(false);
        return await BootAsync(manager, ports, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> BootAsync(LinuxKitManager manager, List<PortMapping> ports, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: booting {0}", Image);
        var vm = await manager.RunAsync(Image, new RunOptions
        {
            Name = string.IsNullOrEmpty(Name) ? null : Name,
            Detach = !StopWhenBuildEnds, // otherwise the VM outlives this task and this MSBuild node
            Memory = Memory,
            Cpus = Cpus,
            Ports = ports,
            SshKey = string.IsNullOrEmpty(SshKey) ? null : SshKey,
            BootTimeout = TimeSpan.FromSeconds(Timeout),
        }, cancellationToken).ConfigureAwait(false);
        Id = vm.Id;
        SshPort = vm.SshPort;
        SshKeyFile = vm.SshKeyFile;
        SshUser = vm.SshUser;
        Pid = vm.Pid;
        ForwardedPorts = vm.Ports.Select(p =>
        {
            var item = new TaskItem(p.Key.ToString(CultureInfo.InvariantCulture));
            item.SetMetadata("HostPort", p.Key.ToString(CultureInfo.InvariantCulture));
            item.SetMetadata("GuestPort", p.Value.ToString(CultureInfo.InvariantCulture));
            return (ITaskItem)item;
        }).ToArray();
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: VM {0} ready after {1} s (ssh {2}@127.0.0.1 -p {3} -i {4})", vm.Id, Seconds(clock), vm.SshUser, vm.SshPort, vm.SshKeyFile);
        if (ExportEnvironment)
        {
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmId, vm.Id);
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.StateDirectory, manager.StateDirectory);
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshPort, vm.SshPort.ToString(CultureInfo.InvariantCulture));
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshKey, vm.SshKeyFile);
            Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshUser, vm.SshUser);
        }
        return true;
    }

    private static readonly Dictionary<string, LinuxKitManager> BuildLifetimeManagers = [];

    private LinuxKitManager BuildLifetimeManager(string? stateDirectory)
    {
        lock (BuildLifetimeManagers)
        {
            var key = stateDirectory ?? "";
            if (!BuildLifetimeManagers.TryGetValue(key, out var manager))
                BuildLifetimeManagers[key] = manager = CreateManager();
            return manager;
        }
    }

    private bool TryParsePorts(string? text, out List<PortMapping> ports)
    {
        ports = [];
        foreach (var entry in (text ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = entry.Split(':');
            if (parts.Length != 2
                || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var host)
                || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var guest))
            {
                Log.LogError(null, "LKT001", null, null, 0, 0, 0, 0,
                    "StartLinuxKit Ports has '{0}': write HOST:GUEST pairs separated by ';', e.g. \"8080:80;0:5432\" (HOST 0 picks a free port).", entry);
                return false;
            }
            ports.Add(new PortMapping(host, guest));
        }
        return true;
    }
}
