using System.Text.Json.Serialization;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.State;

/// <summary>
/// What the state store keeps of one VM, so that another process can find, use and stop it.
/// The VM's own files are not stored but derived from its folder (<see cref="Files"/>): a
/// record cannot point the SDK at a file outside it.
/// </summary>
internal sealed record VmRecord
{
    public required string Id { get; init; }
    public string? Name { get; init; }
    public required string Image { get; init; }
    public required ImageFormat Format { get; init; }
    public required HypervisorKind Hypervisor { get; init; }
    public ContainerStatus Status { get; init; }
    public int Pid { get; init; }

    /// <summary>The hypervisor process's start time, as the OS reports it: with Pid, its identity.</summary>
    public string? PidStartTime { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset? StoppedAt { get; init; }

    /// <summary>0 after a clean power-off, 128+signal when it had to be killed; null while running or when unknown.</summary>
    public int? ExitCode { get; init; }
    public Dictionary<int, int> Ports { get; init; } = [];
    public Dictionary<string, string> Volumes { get; init; } = [];
    public int Memory { get; init; }
    public int Cpus { get; init; }
    public int SshPort { get; init; }
    public required string SshUser { get; init; }
    public required string SshKeyFile { get; init; }
    public string? HostKeyFingerprint { get; init; }

    /// <summary>The host key itself ("TYPE BASE64"), for an SSH client's known_hosts.</summary>
    public string? HostKey { get; init; }

    /// <summary>The process that started the VM and whose end stops it (PID and start time); none for a detached VM once it runs.</summary>
    public int? OwnerPid { get; init; }
    public string? OwnerStartTime { get; init; }

    /// <summary>Whether the owner named by <see cref="OwnerPid"/> still runs (the same process, not a reused PID); false for a VM elsewhere.</summary>
    [JsonIgnore]
    public bool OwnerAlive => Elsewhere is null && OwnerPid is { } owner && new Processes.ProcessIdentity(owner, OwnerStartTime ?? "").IsAlive();

    /// <summary>The machine, boot and PID namespace of the process that made the record: its PIDs mean something only there.</summary>
    public Processes.HostIdentity? Host { get; init; }

    /// <summary>
    /// Where the VM runs, in words, when that is another machine or PID namespace: its PIDs cannot
    /// be checked from here, so it is never refreshed, signalled, pruned or removed from here.
    /// Null for VMs of this host.
    /// </summary>
    [JsonIgnore]
    public string? Elsewhere => Processes.HostIdentity.Elsewhere(Host, Processes.HostIdentity.Current);

    /// <summary>Refuses <paramref name="action"/> on a VM that runs elsewhere, saying where and what to do instead.</summary>
    /// <exception cref="LinuxKitException">The VM runs on another machine or in another PID namespace.</exception>
    public void RequireHere(string action)
    {
        if (Elsewhere is { } where)
            throw new LinuxKitException($"VM {Id} runs {where}: its process cannot be checked from here, so it is not {action} from here. Do it there; to forget its record without stopping it, `linuxkit-testing rm --force {Id}`.");
    }

    /// <summary>The warm-start template the VM was restored from; null after a cold boot.</summary>
    public string? Template { get; init; }
    public bool Detached { get; init; }

    /// <summary>How a stop that names no mode ends this VM (records from before this field: Fast).</summary>
    public StopMode StopMode { get; init; }
    /// <summary>Files that exist only while the VM runs (disk overlay, converted copies); all in the VM's folder.</summary>
    public List<string> RuntimeFiles { get; init; } = [];

    /// <summary>Why the record is <see cref="ContainerStatus.Error"/> when it could not be read at all.</summary>
    public string? Damage { get; init; }

    /// <summary>
    /// The VM's files, named from its folder (never read from the record): the store sets them
    /// on every load, the manager when it makes a record.
    /// </summary>
    [JsonIgnore]
    public VmFiles Files { get; init; } = null!;

    /// <summary>The hypervisor process as recorded (PID and start time, so a reused PID is another process).</summary>
    [JsonIgnore]
    public Processes.ProcessIdentity Process => new(Pid, PidStartTime ?? "");

    /// <summary>
    /// Whether the recorded process is alive and is this VM's hypervisor (it holds the VM's pid
    /// file): only then is it signalled or the VM counted as running.
    /// </summary>
    public bool IsItsHypervisorAlive() => Elsewhere is null && Process.IsHypervisorOf(Files.PidFile);

    /// <summary>Deletes the files that exist only while the VM runs, its control socket and pid file; the rest stays.</summary>
    public void RemoveRuntimeFiles()
    {
        foreach (var file in RuntimeFiles.Append(Files.ControlSocket).Append(Files.PidFile))
        {
            try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    public Container ToContainer() => new()
    {
        Id = Id,
        Name = Name,
        Image = Image,
        Status = Status,
        Pid = Pid,
        StartedAt = StartedAt,
        StoppedAt = StoppedAt,
        ExitCode = ExitCode,
        Ports = new Dictionary<int, int>(Ports),
        Memory = Memory,
        Cpus = Cpus,
        SshPort = SshPort,
        SshUser = SshUser,
        SshKeyFile = SshKeyFile,
        ConsoleLog = Files.ConsoleLog,
        Detached = Detached,
        Error = Damage,
        WarmStartTemplate = Template,
        SshHostKey = HostKey,
        OwnerPid = OwnerPid,
        OwnerAlive = OwnerAlive,
        ForeignHost = Elsewhere,
    };
}
