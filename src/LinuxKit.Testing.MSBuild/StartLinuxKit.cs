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
        var clock = System.Diagnostics.Stopwatch.StartNew();
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: booting {0}", Image);
        await using var manager = CreateManager();
        var vm = await manager.RunAsync(Image, new RunOptions
        {
            Name = string.IsNullOrEmpty(Name) ? null : Name,
            Detach = true, // the VM outlives this task and this MSBuild node
            Memory = Memory,
            Cpus = Cpus,
            Ports = ports,
            SshKey = string.IsNullOrEmpty(SshKey) ? null : SshKey,
            BootTimeout = TimeSpan.FromSeconds(Timeout),
        }, cancellationToken);
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
        return true;
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
