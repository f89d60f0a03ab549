namespace LinuxKit.Testing;

/// <summary>A LinuxKit VM the manager started (the original design calls VMs containers).</summary>
public sealed record Container
{
    /// <summary>Unique id: 8 hex characters.</summary>
    public required string Id { get; init; }

    /// <summary>The optional human-readable name, unique among known VMs.</summary>
    public string? Name { get; init; }

    /// <summary>The image as given to <see cref="IManager.RunAsync"/>.</summary>
    public required string Image { get; init; }

    /// <summary>Whether it runs.</summary>
    public ContainerStatus Status { get; init; }

    /// <summary>The hypervisor's process id.</summary>
    public int Pid { get; init; }

    /// <summary>When the hypervisor started.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Forwarded ports: host port (on 127.0.0.1) to guest port.</summary>
    public IReadOnlyDictionary<int, int> Ports { get; init; } = new Dictionary<int, int>();

    /// <summary>Guest port to host port (on 127.0.0.1), for every forwarded port and the SSH server (guest port 22).</summary>
    public IReadOnlyDictionary<int, int> HostPortsByGuestPort()
    {
        var ports = Ports.ToDictionary(p => p.Value, p => p.Key);
        ports.TryAdd(22, SshPort);
        return ports;
    }

    /// <summary>When the VM stopped; null while it runs.</summary>
    public DateTimeOffset? StoppedAt { get; init; }

    /// <summary>
    /// How the VM ended: 0 when the guest powered off (by itself, or on a
    /// <see cref="StopMode.Graceful"/> stop); 137 when a <see cref="StopMode.Fast"/> stop ended it
    /// at once or it had to be killed, 143 when it had to be terminated; null while it runs or
    /// when it ended without a trace (killed from outside with SIGKILL, crashed).
    /// </summary>
    public int? ExitCode { get; init; }

    /// <summary>Memory in MB.</summary>
    public int Memory { get; init; }

    /// <summary>Virtual CPUs.</summary>
    public int Cpus { get; init; }

    /// <summary>The host port (on 127.0.0.1) forwarded to the guest's SSH server.</summary>
    public int SshPort { get; init; }

    /// <summary>The SSH user.</summary>
    public string SshUser { get; init; } = "root";

    /// <summary>The private key that logs in to the VM.</summary>
    public string SshKeyFile { get; init; } = "";

    /// <summary>The file the serial console is written to.</summary>
    public string ConsoleLog { get; init; } = "";

    /// <summary>True when the VM outlives the process that started it.</summary>
    public bool Detached { get; init; }

    /// <summary>
    /// For a VM in <see cref="ContainerStatus.Error"/> whose record could not be read or trusted:
    /// why (stop it and remove it with <see cref="IManager.StopAsync(string, CancellationToken)"/>).
    /// </summary>
    public string? Error { get; init; }

    /// <summary>
    /// The warm-start template the VM was restored from (see <see cref="RunOptions.WarmStart"/>);
    /// null when it booted cold.
    /// </summary>
    public string? WarmStartTemplate { get; init; }

    /// <summary>
    /// The guest's SSH host key, seen at boot and pinned, as an OpenSSH known_hosts entry
    /// writes it ("TYPE BASE64"); null before the VM answered.
    /// </summary>
    public string? SshHostKey { get; init; }

    /// <summary>The process that started the VM, whose end stops it; null for a detached VM once it runs.</summary>
    public int? OwnerPid { get; init; }

    /// <summary>Whether <see cref="OwnerPid"/> still runs (the same process, not a reused PID); false for a VM that runs elsewhere.</summary>
    public bool OwnerAlive { get; init; }

    /// <summary>
    /// Where the VM runs when that is not this process's machine and PID namespace (a state
    /// directory on a shared or mounted home), in words; null for VMs of this host. Such a VM is
    /// listed as its record last said: its process cannot be checked from here, so it is never
    /// marked stopped, signalled, pruned or removed from here (only a removal with force forgets it).
    /// </summary>
    public string? ForeignHost { get; init; }
}
