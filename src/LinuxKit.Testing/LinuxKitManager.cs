using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Renci.SshNet.Common;

namespace LinuxKit.Testing;

/// <summary>
/// Boots LinuxKit images, waits until they answer over SSH, runs commands in them, streams
/// their serial console and stops them. VMs are recorded in a state directory, so another
/// process (another build step, another test run) can list, use and stop detached VMs.
/// Disposing the manager stops the VMs it started that are not detached.
/// </summary>
public sealed class LinuxKitManager : IManager, IAsyncDisposable
{
    private static readonly TimeSpan SshConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan VolumeFlushBudget = TimeSpan.FromSeconds(2);

    private readonly LinuxKitManagerOptions _options;
    private readonly ILogger _logger;
    private readonly StateStore _store;
    private readonly PortAllocator _ports = new();
    private readonly Lazy<IHypervisor> _hypervisor;
    private readonly ConcurrentDictionary<string, Task<SshSession>> _sessions = new();
    private readonly ConcurrentDictionary<string, OwnerWatchdog?> _owned = new();
    private readonly ConcurrentDictionary<string, ConsoleWatcher> _watchers = new();
    private bool _disposed;

    /// <summary>Creates a manager; nothing is started until <see cref="RunAsync"/>.</summary>
    public LinuxKitManager(LinuxKitManagerOptions? options = null)
        : this(options ?? new LinuxKitManagerOptions(), hypervisorFactory: null)
    {
    }

    /// <summary>
    /// A manager over a given hypervisor factory (tests give a fake); null picks the hypervisor
    /// the options, the environment and the host call for.
    /// </summary>
    internal LinuxKitManager(LinuxKitManagerOptions options, Func<IHypervisor>? hypervisorFactory)
    {
        _options = options;
        _logger = _options.Logger ?? NullLogger.Instance;
        _store = new StateStore(_options.ResolveStateDirectory());
        // Created on first use, so that listing or stopping works where QEMU is not installed.
        _hypervisor = new Lazy<IHypervisor>(hypervisorFactory ?? (() => HypervisorFactory.Create(_options, _logger)));
    }

    /// <summary>The state directory this manager uses.</summary>
    public string StateDirectory => _store.Root;

    /// <inheritdoc />
    public async Task<Container> RunAsync(string image, RunOptions options, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var resolved = LinuxKitImage.Resolve(image, _logger);
        var hypervisor = _hypervisor.Value;
        hypervisor.Validate(resolved, options);
        var clock = Stopwatch.StartNew();

        var id = await _store.LockedAsync(() => ClaimId(options.Name), cancellationToken).ConfigureAwait(false);
        var files = _store.Files(id);
        var description = options.Name is null ? $"VM {id}" : $"VM {id} ({options.Name})";
        _logger.LogInformation("Booting {Vm} from {Image} ({Format})", description, resolved.Path, resolved.Format);

        var record = NewRecord(files, image, resolved, options, hypervisor.Kind);
        ProcessIdentity? process = null;
        var reservations = new List<PortReservation>();
        try
        {
            var sshKeyLine = options.SshKey is null
                ? SshKeyPair.Generate(record.SshKeyFile, $"linuxkit-testing-{id}")
                : SshKeyPair.PublicKeyOf(options.SshKey);
            var shares = options.Volumes.Select((v, i) => new VolumeShare($"vol{i}", Path.GetFullPath(v.Key), v.Value)).ToList();
            await File.WriteAllBytesAsync(
                files.MetadataIso,
                MetadataIso.Build(LinuxKitMetadata.Build(sshKeyLine, shares.Select(s => (s.Tag, s.GuestPath)).ToList()), DateTime.UtcNow),
                cancellationToken).ConfigureAwait(false);
            var bootDisk = await hypervisor.PrepareBootDiskAsync(resolved, files, cancellationToken).ConfigureAwait(false);
            if (bootDisk is not null) record = record with { RuntimeFiles = [bootDisk] };

            var sshReservation = options.SshPort == 0 ? _ports.ReserveFree() : _ports.ReserveExact(options.SshPort, "SSH");
            reservations.Add(sshReservation);
            var forwards = new List<PortForward>();
            foreach (var mapping in options.Ports)
            {
                var reservation = mapping.HostPort == 0
                    ? _ports.ReserveFree()
                    : _ports.ReserveExact(mapping.HostPort, $"forwarded to guest port {mapping.GuestPort}");
                reservations.Add(reservation);
                forwards.Add(new PortForward(reservation.Port, mapping.GuestPort));
            }
            record = record with
            {
                SshPort = sshReservation.Port,
                Ports = forwards.ToDictionary(f => f.HostPort, f => f.GuestPort),
                Volumes = shares.ToDictionary(s => s.HostPath, s => s.GuestPath),
            };
            _store.Save(record);

            var spec = new VmSpec
            {
                Id = id,
                Image = resolved,
                BootDisk = bootDisk,
                MemoryMb = options.Memory,
                Cpus = options.Cpus,
                SshPort = sshReservation.Port,
                Ports = forwards,
                Volumes = shares,
                Files = files,
            };
            // The watchdog starts before the hypervisor: there is no moment in which this
            // process could die and leave a VM that nothing will stop.
            if (!options.Detach) _owned[id] = OwnerWatchdog.Start(spec.Files.PidFile, record.RuntimeFiles);
            else _owned[id] = null;

            _watchers[id] = ConsoleWatcher.Start(record.ConsoleLog, options.ConsoleOutput);
            process = await hypervisor.StartAsync(spec, cancellationToken).ConfigureAwait(false);
            foreach (var reservation in reservations) reservation.Dispose();
            reservations.Clear();
            record = record with { Pid = process.Value.Pid, PidStartTime = process.Value.StartTime, StartedAt = DateTimeOffset.UtcNow };
            _store.Save(record);

            var started = process.Value;
            var ready = await SshReadiness.WaitAsync(
                new SshEndpoint("127.0.0.1", record.SshPort, record.SshUser, record.SshKeyFile),
                hypervisorExited: () => !started.IsAlive(),
                consoleTail: () => ConsoleLog.Tail(record.ConsoleLog),
                options.BootTimeout,
                description,
                cancellationToken).ConfigureAwait(false);
            _sessions[id] = Task.FromResult(ready.Session);
            record = record with { Status = ContainerStatus.Running, HostKeyFingerprint = ready.Session.HostKeyFingerprint };
            _store.Save(record);
            _logger.LogInformation(
                "{Vm} is ready after {Seconds:0.0} s, {Connections} SSH connections ({Banner}; ssh {User}@127.0.0.1 -p {Port})",
                description, clock.Elapsed.TotalSeconds, ready.Connections, ready.Banner, record.SshUser, record.SshPort);
            _logger.LogDebug("{Vm} readiness: {Timeline}", description, ready.Timeline);
            return record.ToContainer();
        }
        catch (Exception e)
        {
            foreach (var reservation in reservations) reservation.Dispose();
            _logger.LogError("{Vm} failed to boot: {Reason}", description, e.Message);
            await AbandonAsync(record, process, e).ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public async Task StopAsync(string id, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        await StopRecordAsync(record, record.StopMode, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops a VM as <paramref name="mode"/> says, whatever its <see cref="RunOptions.StopMode"/>, and removes its runtime files.</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="mode">At once, or after a power-off request.</param>
    /// <param name="cancellationToken">Cancels the waits; signals already sent stay sent.</param>
    public async Task StopAsync(string id, StopMode mode, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        await StopRecordAsync(record, mode, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<Container>> ListAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return await _store.LockedAsync(
            () => _store.LoadAll().Select(r => Refresh(r).ToContainer()).ToList(),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The VM's current status, checked against its hypervisor process (a VM whose hypervisor
    /// exited is <see cref="ContainerStatus.Stopped"/>). Cheap: one small file and one signal-0.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    public Container Inspect(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Refresh(Find(id)).ToContainer();
    }

    /// <inheritdoc />
    public Task<Stream> LogsAsync(string id, bool follow, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        var file = ConsoleLog.Open(record.ConsoleLog);
        if (!follow) return Task.FromResult<Stream>(file);
        var process = Identity(record);
        return Task.FromResult<Stream>(new FollowingStream(file, () => process.IsAlive(), cancellationToken));
    }

    /// <inheritdoc />
    public async Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var commandLine = ShellQuoting.Join(command);
        return await OverSshAsync(id, session => session.RunAsync(commandLine, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes a file in the VM (over the SSH connection, with nothing but a POSIX shell needed in
    /// the guest). The file appears whole or not at all; missing parent folders are created.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="guestPath">The absolute path in the guest.</param>
    /// <param name="content">What to write; read to its end.</param>
    /// <param name="mode">The file's permissions.</param>
    /// <param name="ownerId">The owning user id.</param>
    /// <param name="groupId">The owning group id.</param>
    /// <param name="cancellationToken">Cancels the copy.</param>
    /// <exception cref="LinuxKitException">The guest refused the file (read-only file system, full disk, ...).</exception>
    public async Task WriteFileAsync(string id, string guestPath, Stream content, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        RequireAbsolute(guestPath);
        var octal = Convert.ToString((int)mode & 0xFFF, 8);
        var owner = string.Create(CultureInfo.InvariantCulture, $"{ownerId}:{groupId}");
        // The guest renames the file into place only at the expected size, so a copy that breaks
        // off never lands; a stream of unknown length is spooled to learn its size.
        FileStream? spooled = null;
        ExecResult result;
        try
        {
            if (!content.CanSeek)
            {
                spooled = new FileStream(Path.Combine(Path.GetTempPath(), $"linuxkit-copy-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 81920, FileOptions.DeleteOnClose);
                await content.CopyToAsync(spooled, cancellationToken).ConfigureAwait(false);
                spooled.Position = 0;
            }
            var source = spooled ?? content;
            var length = source.Length - source.Position;
            result = await OverSshAsync(id, session => session.WriteFileAsync(guestPath, source, length, octal, owner, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (spooled is not null) await spooled.DisposeAsync().ConfigureAwait(false);
        }
        if (result.ExitCode != 0)
            throw new LinuxKitException($"Cannot write '{guestPath}' in VM {id} (exit code {result.ExitCode}): {result.Stderr.Trim()}");
    }

    /// <summary>Reads a file from the VM (over the SSH connection; no SFTP server needed).</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="guestPath">The absolute path in the guest.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    /// <exception cref="LinuxKitException">The path is a folder or cannot be read.</exception>
    public async Task<byte[]> ReadFileAsync(string id, string guestPath, CancellationToken cancellationToken = default)
    {
        RequireAbsolute(guestPath);
        var (exitCode, content, error) = await OverSshAsync(id, session => session.ReadFileAsync(guestPath, cancellationToken), cancellationToken).ConfigureAwait(false);
        return exitCode switch
        {
            0 => content,
            2 => throw new FileNotFoundException($"There is no file '{guestPath}' in VM {id}.", guestPath),
            3 => throw new LinuxKitException($"'{guestPath}' in VM {id} is a folder; read the files in it one by one."),
            _ => throw new LinuxKitException($"Cannot read '{guestPath}' in VM {id} (exit code {exitCode}): {error.Trim()}"),
        };
    }

    /// <summary>
    /// The console's lines written from <paramref name="since"/> up to <paramref name="until"/>,
    /// each with its time. A serial console has no timestamps, so a line's time is when this
    /// manager saw it in the console log: within 0.1 s of the guest writing it for VMs this
    /// manager booted, the time of this call for older lines of other VMs.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="since">The earliest line to return; null from the first.</param>
    /// <param name="until">The latest line to return; null to the last.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    public async Task<IReadOnlyList<ConsoleLine>> ReadConsoleAsync(string id, DateTimeOffset? since = null, DateTimeOffset? until = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        var timeline = _watchers.TryGetValue(record.Id, out var watcher) ? watcher.Timeline : new ConsoleTimeline();
        byte[] log;
        var file = ConsoleLog.Open(record.ConsoleLog);
        await using (file.ConfigureAwait(false))
        {
            log = new byte[file.Length];
            await file.ReadExactlyAsync(log, cancellationToken).ConfigureAwait(false);
        }
        timeline.Mark(log.Length, DateTimeOffset.UtcNow);
        return timeline.Lines(log, since ?? DateTimeOffset.MinValue, until ?? DateTimeOffset.MaxValue);
    }

    private static void RequireAbsolute(string guestPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(guestPath);
        if (!guestPath.StartsWith('/')) throw new ArgumentException($"Guest path '{guestPath}' is not absolute.", nameof(guestPath));
    }

    // Runs an operation on the VM's SSH connection; a connection that dropped (the guest
    // restarted sshd, a network hiccup) is replaced once.
    private async Task<T> OverSshAsync<T>(string id, Func<SshSession, Task<T>> operation, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        if (record.Status != ContainerStatus.Running || !Identity(record).IsAlive())
            throw new LinuxKitException($"VM {record.Id} is not running (status {Refresh(record).Status}); start it before running commands in it.");

        for (var attempt = 1; ; attempt++)
        {
            var session = await SessionAsync(record, cancellationToken).ConfigureAwait(false);
            try
            {
                return await operation(session).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt == 1 && e is SshConnectionException or ObjectDisposedException or InvalidOperationException or IOException)
            {
                _sessions.TryRemove(record.Id, out _);
                session.Dispose();
            }
        }
    }

    /// <summary>Freezes a running VM's CPUs (QMP stop).</summary>
    public async Task PauseAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        await HypervisorFor(record).PauseAsync(record.ControlSocket, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lets a paused VM run again (QMP cont).</summary>
    public async Task ResumeAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        await HypervisorFor(record).ResumeAsync(record.ControlSocket, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the VMs this manager started that are not detached and removes their folders.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        var stops = _owned.Where(o => o.Value is not null).Select(async o =>
        {
            try
            {
                if (_store.Load(o.Key) is { } record)
                {
                    await StopRecordAsync(record, record.StopMode, CancellationToken.None).ConfigureAwait(false);
                    _store.Delete(o.Key);
                }
            }
            catch (Exception e) when (e is LinuxKitException or IOException)
            {
                _logger.LogWarning("Could not stop VM {Id}: {Reason}", o.Key, e.Message);
            }
        });
        await Task.WhenAll(stops).ConfigureAwait(false);
        foreach (var session in _sessions.Values.Where(s => s.IsCompletedSuccessfully)) session.Result.Dispose();
        foreach (var watchdog in _owned.Values) watchdog?.Dispose();
        foreach (var watcher in _watchers.Values) await watcher.DisposeAsync().ConfigureAwait(false);
        _sessions.Clear();
        _watchers.Clear();
        _owned.Clear();
    }

    private IHypervisor HypervisorFor(VmRecord record) =>
        record.Hypervisor == _hypervisor.Value.Kind ? _hypervisor.Value
            : throw new LinuxKitException($"VM {record.Id} runs under {record.Hypervisor}, this manager uses {_hypervisor.Value.Kind}.");

    private string ClaimId(string? name)
    {
        var all = _store.LoadAll();
        if (name is not null)
        {
            foreach (var existing in all.Where(r => r.Name == name))
            {
                if (Refresh(existing).Status is ContainerStatus.Running or ContainerStatus.Starting)
                    throw new LinuxKitException($"A VM named '{name}' is already running (id {existing.Id}). Stop it first, or choose another name.");
                _store.Delete(existing.Id); // a stopped VM gives up its name
            }
        }
        var id = _store.NewId();
        Directory.CreateDirectory(_store.VmDirectory(id));
        return id;
    }

    private static VmRecord NewRecord(VmFiles files, string image, LinuxKitImage resolved, RunOptions options, HypervisorKind kind)
    {
        return new VmRecord
        {
            Id = files.Id,
            Name = options.Name,
            Image = image,
            Format = resolved.Format,
            Hypervisor = kind,
            Status = ContainerStatus.Starting,
            Memory = options.Memory,
            Cpus = options.Cpus,
            SshUser = options.SshUser,
            SshKeyFile = options.SshKey is null ? files.SshKey : Path.GetFullPath(options.SshKey),
            Detached = options.Detach,
            StopMode = options.StopMode,
            ConsoleLog = files.ConsoleLog,
            ControlSocket = files.ControlSocket,
            PidFile = files.PidFile,
            HypervisorLog = files.HypervisorLog,
            StartedAt = DateTimeOffset.UtcNow,
        };
    }

    // A boot that failed or was cancelled leaves nothing running: the hypervisor is killed at
    // once (there is nothing to shut down gracefully), its files are removed and the record
    // says Error, with the console log kept for a post-mortem.
    private async Task AbandonAsync(VmRecord record, ProcessIdentity? process, Exception reason)
    {
        if (process is { } p && p.IsAlive())
        {
            p.Signal(UnixSignal.Kill);
            await p.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None).ConfigureAwait(false);
        }
        CloseSession(record.Id);
        if (_owned.TryRemove(record.Id, out var watchdog)) watchdog?.Dispose();
        if (_watchers.TryRemove(record.Id, out var watcher)) await watcher.DisposeAsync().ConfigureAwait(false);
        RemoveRuntimeFiles(record);
        try
        {
            _store.Save(record with { Status = ContainerStatus.Error, StoppedAt = DateTimeOffset.UtcNow });
        }
        catch (IOException e)
        {
            _logger.LogWarning("Could not record the failure of VM {Id}: {Reason} (after: {Cause})", record.Id, e.Message, reason.Message);
        }
    }

    private async Task StopRecordAsync(VmRecord record, StopMode mode, CancellationToken cancellationToken)
    {
        var process = Identity(record);
        var exitCode = record.ExitCode;
        if (process.IsAlive())
        {
            _logger.LogInformation("Stopping VM {Id} ({Mode})", record.Id, mode);
            if (mode == StopMode.Fast && record.Volumes.Count > 0) await FlushVolumesAsync(record).ConfigureAwait(false);
            // The connection is closed while the guest still answers: after a fast stop its
            // socket is dead, and closing channels on it fails.
            CloseSession(record.Id);
            exitCode = await HypervisorFor(record).StopAsync(record.ControlSocket, process, mode, _options.StopTimeout, cancellationToken).ConfigureAwait(false);
        }
        else if (record.Status is ContainerStatus.Running or ContainerStatus.Starting)
        {
            exitCode = ExitTrace.Infer(record.HypervisorLog, record.ConsoleLog);
        }
        CloseSession(record.Id);
        if (_owned.TryGetValue(record.Id, out var watchdog)) watchdog?.Dispose();
        if (_watchers.TryRemove(record.Id, out var watcher)) await watcher.DisposeAsync().ConfigureAwait(false);
        RemoveRuntimeFiles(record);
        var stopped = record with { Status = ContainerStatus.Stopped, StoppedAt = record.StoppedAt ?? DateTimeOffset.UtcNow, ExitCode = exitCode };
        await _store.LockedAsync(() => _store.Save(stopped), cancellationToken).ConfigureAwait(false);
        _logger.LogInformation("VM {Id} stopped", record.Id);
    }

    // What the guest wrote to a host folder may still sit in its page cache; a fast stop would
    // lose it. Best effort within a fixed budget: a hung guest must not hold the stop.
    private async Task FlushVolumesAsync(VmRecord record)
    {
        using var budget = new CancellationTokenSource(VolumeFlushBudget);
        try
        {
            await OverSshAsync(record.Id, session => session.RunAsync("sync", budget.Token), budget.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LinuxKitException or SshException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            _logger.LogWarning("Could not flush VM {Id}'s volumes before stopping it: {Reason}", record.Id, e.Message);
        }
    }

    private void CloseSession(string id)
    {
        if (_sessions.TryRemove(id, out var session) && session.IsCompletedSuccessfully) session.Result.Dispose();
    }

    private static void RemoveRuntimeFiles(VmRecord record)
    {
        foreach (var file in record.RuntimeFiles.Append(record.ControlSocket).Append(record.PidFile))
        {
            try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private VmRecord Find(string idOrName)
    {
        ArgumentException.ThrowIfNullOrEmpty(idOrName);
        var record = _store.Load(idOrName) ?? _store.LoadAll().FirstOrDefault(r => r.Name == idOrName);
        return record ?? throw new LinuxKitException($"No VM with id or name '{idOrName}' in state directory '{_store.Root}'.");
    }

    private static ProcessIdentity Identity(VmRecord record) => new(record.Pid, record.PidStartTime ?? "");

    // A VM whose hypervisor is gone is stopped, whatever its record said.
    private VmRecord Refresh(VmRecord record)
    {
        if (record.Status is not (ContainerStatus.Running or ContainerStatus.Starting) || Identity(record).IsAlive()) return record;
        if (record.Status == ContainerStatus.Starting && record.Pid == 0 && DateTimeOffset.UtcNow - record.StartedAt < TimeSpan.FromMinutes(10))
            return record; // still being prepared by its process
        var stopped = record with
        {
            Status = ContainerStatus.Stopped,
            StoppedAt = DateTimeOffset.UtcNow,
            ExitCode = ExitTrace.Infer(record.HypervisorLog, record.ConsoleLog),
        };
        RemoveRuntimeFiles(stopped);
        _store.Save(stopped);
        return stopped;
    }

    // One connection per VM, shared by concurrent callers; a failed connect is not cached.
    private async Task<SshSession> SessionAsync(VmRecord record, CancellationToken cancellationToken)
    {
        var connecting = _sessions.GetOrAdd(record.Id, _ => ConnectWithRetriesAsync(
            new SshEndpoint("127.0.0.1", record.SshPort, record.SshUser, record.SshKeyFile),
            record.HostKeyFingerprint));
        try
        {
            return await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _sessions.TryRemove(new KeyValuePair<string, Task<SshSession>>(record.Id, connecting));
            throw new LinuxKitException($"Cannot connect to VM {record.Id} over SSH on 127.0.0.1:{record.SshPort}: {e.Message}", e);
        }
    }

    // A connection can be dropped before the SSH banner: QEMU's user network delivers
    // connections it queued while the guest booted (the readiness probes'), and dropbear turns
    // away new clients while too many are unauthenticated. That passes within a second or two;
    // a wrong key or host key does not, and is not retried.
    private static async Task<SshSession> ConnectWithRetriesAsync(SshEndpoint endpoint, string? pinnedFingerprint)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await SshSession.ConnectAsync(endpoint, pinnedFingerprint, SshConnectTimeout, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt < 6 && e is SshConnectionException or System.Net.Sockets.SocketException or SshOperationTimeoutException)
            {
                await Task.Delay(delay).ConfigureAwait(false);
                delay *= 2;
            }
        }
    }
}
