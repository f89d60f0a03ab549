using System.Globalization;
using System.Text;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using DotNet.Testcontainers.Networks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TcExecResult = DotNet.Testcontainers.Containers.ExecResult;
using LinuxKit.Testing.Networking;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// A LinuxKit VM behind Testcontainers' <see cref="IContainer"/>: Testcontainers' wait
/// strategies, fixtures and helpers work with it as with a Docker container, and no Docker
/// engine is needed or contacted. Build it with <see cref="LinuxKitBuilder"/>.
/// </summary>
/// <remarks>
/// The VM runs under QEMU with user-mode networking: it is reached from the host through its
/// published ports on 127.0.0.1 (<see cref="Hostname"/>), over SSH for commands and files, and
/// its serial console is its log. If the process dies, the core runtime's watchdog stops the
/// VM; no reaper container is involved.
/// </remarks>
public sealed class LinuxKitContainer : IContainer
{
    private const int SshGuestPort = 22;
    private const string NoDockerNetworks =
        "A LinuxKit VM is not attached to Docker networks: it runs under QEMU with user-mode networking. " +
        "Publish its ports with WithPortBinding and reach them on 127.0.0.1 (also from other containers or VMs, through the host).";

    private readonly LinuxKitConfiguration _configuration;
    private readonly LinuxKitManager _manager;
    private readonly SemaphoreSlim _lifecycle = new(1, 1);
    private Container? _vm;
    private TestcontainersStates _state = TestcontainersStates.Undefined;
    private bool _disposed;

    internal LinuxKitContainer(LinuxKitConfiguration configuration)
    {
        _configuration = configuration;
        Logger = configuration.ManagerOptions.Logger ?? NullLogger.Instance;
        Image = new LinuxKitImageReference(configuration.Image!);
        _manager = new LinuxKitManager(configuration.ManagerOptions with { Logger = Logger });
    }

    /// <inheritdoc />
    public event EventHandler? Creating;

    /// <inheritdoc />
    public event EventHandler? Starting;

    /// <inheritdoc />
    public event EventHandler? Stopping;

    /// <inheritdoc />
    public event EventHandler? Pausing;

    /// <inheritdoc />
    public event EventHandler? Unpausing;

    /// <inheritdoc />
    public event EventHandler? Created;

    /// <inheritdoc />
    public event EventHandler? Started;

    /// <inheritdoc />
    public event EventHandler? Stopped;

    /// <inheritdoc />
    public event EventHandler? Paused;

    /// <inheritdoc />
    public event EventHandler? Unpaused;

    /// <inheritdoc />
    public DateTime CreatedTime { get; private set; }

    /// <inheritdoc />
    public DateTime StartedTime { get; private set; }

    /// <inheritdoc />
    public DateTime StoppedTime { get; private set; }

    /// <inheritdoc />
    public DateTime PausedTime { get; private set; }

    /// <inheritdoc />
    public DateTime UnpausedTime { get; private set; }

    /// <inheritdoc />
    public ILogger Logger { get; }

    /// <summary>The VM's id in the LinuxKit.Testing state directory; empty before the first start.</summary>
    public string Id => _vm?.Id ?? "";

    /// <summary>The configured name, else the id.</summary>
    public string Name => _configuration.Options.Name ?? Id;

    /// <summary>
    /// The guest's own IPv4 address, as the guest reports it. Under QEMU's user-mode network
    /// it is reachable only from inside the guest; use <see cref="Hostname"/> and the mapped
    /// ports from the host.
    /// </summary>
    public string IpAddress { get; private set; } = "";

    /// <summary>The guest network interface's MAC address, as the guest reports it.</summary>
    public string MacAddress { get; private set; } = "";

    /// <summary>Always 127.0.0.1: published ports and SSH listen there.</summary>
    public string Hostname => Loopback.Address;

    /// <inheritdoc />
    public IImage Image { get; }

    /// <summary>
    /// Undefined before the first start, Created while booting, Running, Paused, and Exited
    /// after a stop or when the VM powered off or died by itself.
    /// </summary>
    public TestcontainersStates State
    {
        get
        {
            if (_state is TestcontainersStates.Running or TestcontainersStates.Paused && !IsRunning()) return TestcontainersStates.Exited;
            return _state;
        }
    }

    /// <summary>A VM has no Docker health check: None while it runs, Undefined otherwise.</summary>
    public TestcontainersHealthStatus Health => State is TestcontainersStates.Running or TestcontainersStates.Paused
        ? TestcontainersHealthStatus.None
        : TestcontainersHealthStatus.Undefined;

    /// <summary>Always 0: there is no health check to fail.</summary>
    public long HealthCheckFailingStreak => 0;

    /// <summary>The host port of the first port binding.</summary>
    /// <exception cref="InvalidOperationException">No port binding was configured, or the VM is not started.</exception>
    public ushort GetMappedPublicPort()
    {
        if (_configuration.Options.Ports.Count == 0)
            throw new InvalidOperationException("No port binding was configured: call WithPortBinding on the builder.");
        return GetMappedPublicPort(_configuration.Options.Ports[0].GuestPort);
    }

    /// <summary>The host port on 127.0.0.1 that reaches <paramref name="containerPort"/> in the guest (22 is SSH).</summary>
    /// <exception cref="InvalidOperationException">The port is not published, or the VM is not started.</exception>
    public ushort GetMappedPublicPort(int containerPort)
    {
        var ports = GetMappedPublicPorts();
        return ports.TryGetValue((ushort)containerPort, out var host)
            ? host
            : throw new InvalidOperationException(
                $"Guest port {containerPort} is not published; published: {string.Join(", ", ports.Keys)}. Add WithPortBinding({containerPort}, assignRandomHostPort: true) to the builder.");
    }

    /// <summary>As <see cref="GetMappedPublicPort(int)"/>, for "80" or "80/tcp" (only TCP is forwarded).</summary>
    public ushort GetMappedPublicPort(string containerPort)
    {
        ArgumentException.ThrowIfNullOrEmpty(containerPort);
        var parts = containerPort.Split('/');
        if (parts.Length > 2 || (parts.Length == 2 && !parts[1].Equals("tcp", StringComparison.OrdinalIgnoreCase))
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            throw new ArgumentException($"'{containerPort}' is not a TCP port (give \"80\" or \"80/tcp\"; UDP is not forwarded).", nameof(containerPort));
        return GetMappedPublicPort(port);
    }

    /// <summary>Guest port to host port, for every published port and SSH (guest port 22).</summary>
    /// <exception cref="InvalidOperationException">The VM is not started.</exception>
    public IReadOnlyDictionary<ushort, ushort> GetMappedPublicPorts()
    {
        var vm = RequireStarted();
        var ports = vm.Ports.ToDictionary(p => (ushort)p.Value, p => (ushort)p.Key);
        ports.TryAdd(SshGuestPort, (ushort)vm.SshPort);
        return ports;
    }

    /// <summary>
    /// Waits until the VM has stopped and returns how it ended: 0 when the guest powered off (by
    /// itself, or on <see cref="StopAsync"/> with <see cref="LinuxKitBuilder.WithGracefulStop"/>),
    /// 137 when <see cref="StopAsync"/> ended it at once (the default) or it had to be killed, 143
    /// when it had to be terminated, -1 when it ended without a trace (crashed, or killed from outside).
    /// </summary>
    public async Task<long> GetExitCodeAsync(CancellationToken ct = default)
    {
        var vm = RequireStarted();
        var now = vm;
        await Polling.UntilAsync(
            () => (now = _manager.Inspect(vm.Id)).Status is ContainerStatus.Stopped or ContainerStatus.Error,
            TimeSpan.FromMilliseconds(200), Timeout.InfiniteTimeSpan, ct).ConfigureAwait(false);
        return now.ExitCode ?? -1;
    }

    /// <summary>
    /// The serial console written from <paramref name="since"/> up to <paramref name="until"/>
    /// (default: all) as stdout; stderr is empty (a serial console has one stream). A line's
    /// time is when it appeared in the console log, within 0.1 s; with
    /// <paramref name="timestampsEnabled"/> each line starts with it, as Docker writes it.
    /// </summary>
    public async Task<(string Stdout, string Stderr)> GetLogsAsync(DateTime since = default, DateTime until = default, bool timestampsEnabled = true, CancellationToken ct = default)
    {
        var vm = RequireStarted();
        var lines = await _manager.ReadConsoleAsync(
            vm.Id,
            since == default ? null : AsUtc(since),
            until == default ? null : AsUtc(until),
            ct).ConfigureAwait(false);
        var text = new StringBuilder();
        foreach (var line in lines)
        {
            if (timestampsEnabled) text.Append(line.Time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture)).Append(' ');
            text.Append(line.Text).Append('\n');
        }
        return (text.ToString(), "");
    }

    /// <summary>
    /// Boots the VM, waits until it answers over SSH, then runs the wait strategies in order.
    /// A VM that dies on the way fails the start at once with its console; a start that fails
    /// or is cancelled leaves the VM stopped. Starting a running VM does nothing; starting a
    /// stopped one boots a fresh VM from the image.
    /// </summary>
    /// <exception cref="LinuxKitException">The image or an option is unusable, or the boot failed (with the console's last lines).</exception>
    /// <exception cref="ContainerNotRunningException">The VM stopped during a wait strategy.</exception>
    /// <exception cref="TimeoutException">The start-up timeout or a wait strategy's timeout passed.</exception>
    public async Task StartAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (State is TestcontainersStates.Running or TestcontainersStates.Paused) return;
            using var startup = CancellationTokenSource.CreateLinkedTokenSource(ct);
            startup.CancelAfter(_configuration.StartupTimeout);

            Creating?.Invoke(this, EventArgs.Empty);
            CreatedTime = DateTime.UtcNow;
            _state = TestcontainersStates.Created;
            Created?.Invoke(this, EventArgs.Empty);
            Starting?.Invoke(this, EventArgs.Empty);
            try
            {
                await BootAsync(startup.Token).ConfigureAwait(false);
                await WaitStrategyRunner.RunAsync(this, BuildStrategies(), IsRunning, DiedDuring, startup.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await AbandonAsync().ConfigureAwait(false);
                throw new TimeoutException($"VM {Id} from '{_configuration.Image}' did not start within {_configuration.StartupTimeout} (WithStartupTimeout).\nLast console lines:\n{await ConsoleTailAsync().ConfigureAwait(false)}");
            }
            catch
            {
                await AbandonAsync().ConfigureAwait(false);
                throw;
            }
            Started?.Invoke(this, EventArgs.Empty);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Powers the VM off (ACPI, then SIGTERM, then SIGKILL). Its logs stay readable until disposal.</summary>
    public async Task StopAsync(CancellationToken ct = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _lifecycle.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_vm is null || _state is TestcontainersStates.Exited or TestcontainersStates.Undefined) return;
            Stopping?.Invoke(this, EventArgs.Empty);
            await _manager.StopAsync(_vm.Id, ct).ConfigureAwait(false);
            MarkStopped();
            Stopped?.Invoke(this, EventArgs.Empty);
        }
        finally
        {
            _lifecycle.Release();
        }
    }

    /// <summary>Freezes the VM's CPUs (QMP stop); published ports stay bound but nothing answers.</summary>
    public async Task PauseAsync(CancellationToken ct = default)
    {
        var vm = RequireStarted();
        Pausing?.Invoke(this, EventArgs.Empty);
        await _manager.PauseAsync(vm.Id, ct).ConfigureAwait(false);
        _state = TestcontainersStates.Paused;
        PausedTime = DateTime.UtcNow;
        Paused?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>Lets a paused VM run again (QMP cont).</summary>
    public async Task UnpauseAsync(CancellationToken ct = default)
    {
        var vm = RequireStarted();
        Unpausing?.Invoke(this, EventArgs.Empty);
        await _manager.ResumeAsync(vm.Id, ct).ConfigureAwait(false);
        _state = TestcontainersStates.Running;
        UnpausedTime = DateTime.UtcNow;
        Unpaused?.Invoke(this, EventArgs.Empty);
    }

    /// <summary>Not supported: a VM is not attached to Docker networks.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Task ConnectAsync(string network, CancellationToken ct = default) => throw new NotSupportedException(NoDockerNetworks);

    /// <summary>Not supported: a VM is not attached to Docker networks.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Task ConnectAsync(INetwork network, CancellationToken ct = default) => throw new NotSupportedException(NoDockerNetworks);

    /// <summary>Writes a file in the guest over SSH (only a POSIX shell is needed there); parent folders are created.</summary>
    public async Task CopyAsync(byte[] fileContent, string filePath, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(fileContent);
        using var content = new MemoryStream(fileContent, writable: false);
        await _manager.WriteFileAsync(RequireStarted().Id, filePath, content, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct).ConfigureAwait(false);
    }

    /// <summary>Copies a host file or folder into the guest folder <paramref name="target"/>.</summary>
    /// <exception cref="FileNotFoundException"><paramref name="source"/> does not exist.</exception>
    public Task CopyAsync(string source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        if (Directory.Exists(source)) return CopyAsync(new DirectoryInfo(source), target, uid, gid, fileMode, ct);
        if (File.Exists(source)) return CopyAsync(new FileInfo(source), target, uid, gid, fileMode, ct);
        throw new FileNotFoundException($"Cannot copy '{source}' into the VM: there is no such file or folder on the host.", source);
    }

    /// <summary>Copies the contents of a host folder, recursively, into the guest folder <paramref name="target"/>.</summary>
    public async Task CopyAsync(DirectoryInfo source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.Exists) throw new DirectoryNotFoundException($"Cannot copy '{source.FullName}' into the VM: there is no such folder on the host.");
        var id = RequireStarted().Id;
        var folders = source.EnumerateDirectories("*", SearchOption.AllDirectories)
            .Select(d => GuestPath(target, Path.GetRelativePath(source.FullName, d.FullName)))
            .Prepend(target)
            .ToList();
        var made = await _manager.ExecAsync(id, ["mkdir", "-p", "--", .. folders], ct).ConfigureAwait(false);
        if (made.ExitCode != 0) throw new LinuxKitException($"Cannot create '{target}' in VM {id}: {made.Stderr.Trim()}");
        foreach (var file in source.EnumerateFiles("*", SearchOption.AllDirectories))
        {
            var content = file.OpenRead();
            await using var contentDisposal = content.ConfigureAwait(false);
            var guestPath = GuestPath(target, Path.GetRelativePath(source.FullName, file.FullName));
            await _manager.WriteFileAsync(id, guestPath, content, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Copies a host file into the guest folder <paramref name="target"/>, keeping its name.</summary>
    public async Task CopyAsync(FileInfo source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.Exists) throw new FileNotFoundException($"Cannot copy '{source.FullName}' into the VM: there is no such file on the host.", source.FullName);
        var content = source.OpenRead();
        await using var contentDisposal = content.ConfigureAwait(false);
        await _manager.WriteFileAsync(RequireStarted().Id, GuestPath(target, source.Name), content, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct).ConfigureAwait(false);
    }

    /// <summary>Reads a guest file over SSH (no SFTP server needed).</summary>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    public Task<byte[]> ReadFileAsync(string filePath, CancellationToken ct = default) =>
        _manager.ReadFileAsync(RequireStarted().Id, filePath, ct);

    /// <summary>Runs a command in the guest over SSH; each element reaches the program as one argument.</summary>
    public async Task<TcExecResult> ExecAsync(IList<string> command, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var result = await _manager.ExecAsync(RequireStarted().Id, command.ToList(), ct).ConfigureAwait(false);
        return new TcExecResult(result.Stdout, result.Stderr, result.ExitCode);
    }

    /// <summary>
    /// An SSH URL for the VM (<c>ssh://root@127.0.0.1:PORT</c>); use it with the key the VM was
    /// given. Only <see cref="ConnectionMode.Host"/> has a meaning for a VM.
    /// </summary>
    public string GetConnectionString(ConnectionMode connectionMode = ConnectionMode.Host)
    {
        if (connectionMode != ConnectionMode.Host)
            throw new NotSupportedException("A LinuxKit VM is reached from the host only (ConnectionMode.Host): it is on no container network.");
        var vm = RequireStarted();
        return string.Create(CultureInfo.InvariantCulture, $"ssh://{vm.SshUser}@{Hostname}:{vm.SshPort}");
    }

    /// <summary>Not supported: a LinuxKit VM has no named connection strings.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public string GetConnectionString(string name, ConnectionMode connectionMode = ConnectionMode.Host) =>
        throw new NotSupportedException($"A LinuxKit VM has no connection string named '{name}'; GetConnectionString() gives its SSH URL.");

    /// <summary>The private key file the VM accepts for SSH.</summary>
    public string SshKeyFile => RequireStarted().SshKeyFile;

    /// <summary>Stops the VM if it runs and removes everything it left (state folder, overlay, keys).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _disposed = true;
        await _manager.DisposeAsync().ConfigureAwait(false);
        _lifecycle.Dispose();
    }

    private async Task BootAsync(CancellationToken cancellationToken)
    {
        var consumer = _configuration.OutputConsumer;
        var options = _configuration.Options with { ConsoleOutput = consumer is { Enabled: true } ? consumer.Stdout : null };
        // A restart boots a fresh VM; the old one's folder goes at disposal.
        _vm = null;
        _vm = await _manager.RunAsync(_configuration.Image!, options, cancellationToken).ConfigureAwait(false);
        StartedTime = DateTime.UtcNow;
        _state = TestcontainersStates.Running;
        await ReadAddressesAsync(cancellationToken).ConfigureAwait(false);
    }

    // What the guest says of its network: best effort, a minimal image may lack 'ip'.
    private async Task ReadAddressesAsync(CancellationToken cancellationToken)
    {
        var script = "for i in /sys/class/net/*; do [ \"${i##*/}\" = lo ] || { cat \"$i/address\"; ip -4 -o addr show dev \"${i##*/}\" 2>/dev/null; break; }; done";
        var result = await _manager.ExecAsync(_vm!.Id, ["sh", "-c", script], cancellationToken).ConfigureAwait(false);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        MacAddress = lines.FirstOrDefault() ?? "";
        var inet = lines.Skip(1).SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).SkipWhile(w => w != "inet").Skip(1).FirstOrDefault();
        IpAddress = inet?.Split('/')[0] ?? "";
    }

    private List<WaitStrategy> BuildStrategies() => _configuration.WaitStrategies.SelectMany(w => w.Build()).ToList();

    private bool IsRunning() => _vm is not null && _manager.Inspect(_vm.Id).Status == ContainerStatus.Running;

    private async Task<Exception> DiedDuring(string what)
    {
        var vm = _manager.Inspect(_vm!.Id);
        var console = await ConsoleTailAsync().ConfigureAwait(false);
        return new ContainerNotRunningException(
            vm.Id,
            $"The VM stopped during its {what}. Last console lines:\n{console}",
            "",
            vm.ExitCode ?? -1,
            null);
    }

    private async Task<string> ConsoleTailAsync()
    {
        if (_vm is null) return "";
        var lines = await _manager.ReadConsoleAsync(_vm.Id).ConfigureAwait(false);
        return string.Join('\n', lines.TakeLast(30).Select(l => l.Text));
    }

    // A start that failed leaves nothing running; the console stays readable.
    private async Task AbandonAsync()
    {
        if (_vm is not null)
        {
            try
            {
                await _manager.StopAsync(_vm.Id, CancellationToken.None).ConfigureAwait(false);
            }
            catch (LinuxKitException e)
            {
                Logger.LogWarning("Could not stop VM {Id} after its failed start: {Reason}", _vm.Id, e.Message);
            }
        }
        MarkStopped();
    }

    private void MarkStopped()
    {
        _state = _vm is null ? TestcontainersStates.Undefined : TestcontainersStates.Exited;
        StoppedTime = DateTime.UtcNow;
    }

    private Container RequireStarted() =>
        _vm ?? throw new InvalidOperationException("The VM has not been started: call StartAsync first.");

    private static string GuestPath(string folder, string relative) =>
        folder.TrimEnd('/') + "/" + relative.Replace(Path.DirectorySeparatorChar, '/');

    private static DateTimeOffset AsUtc(DateTime time) => time.Kind switch
    {
        DateTimeKind.Local => new DateTimeOffset(time.ToUniversalTime(), TimeSpan.Zero),
        _ => new DateTimeOffset(DateTime.SpecifyKind(time, DateTimeKind.Utc), TimeSpan.Zero),
    };
}
