using System.Collections.Concurrent;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.KubeVirt;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;
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
public sealed class LinuxKitManager : IManager
{
    private static readonly TimeSpan VolumeFlushBudget = TimeSpan.FromSeconds(2);

    private readonly LinuxKitManagerOptions _options;
    private readonly ILogger _logger;
    private readonly StateStore _store;
    private readonly PortAllocator _ports;
    private readonly Lazy<IHypervisor> _hypervisor;
    private readonly bool _hypervisorGiven;
    private readonly ConcurrentDictionary<HypervisorKind, IHypervisor> _otherHypervisors = new();
    private readonly TimeProvider _time;
    private readonly SshSessionPool _sessions;
    private readonly ConcurrentDictionary<string, OwnerWatchdog?> _owned = new();
    private readonly ConcurrentDictionary<string, ConsoleWatcher> _watchers = new();
    private readonly WarmStart _warmStart;
    private bool _disposed;

    /// <summary>Creates a manager; nothing is started until <see cref="RunAsync"/>.</summary>
    public LinuxKitManager(LinuxKitManagerOptions? options = null)
        : this(options ?? new LinuxKitManagerOptions(), hypervisorFactory: null)
    {
    }

    /// <summary>
    /// A manager over given seams (tests give fakes): null picks the hypervisor the options, the
    /// environment and the host call for, the store in the options' state directory, and the
    /// system clock.
    /// </summary>
    internal LinuxKitManager(LinuxKitManagerOptions options, Func<IHypervisor>? hypervisorFactory, StateStore? store = null, TimeProvider? time = null)
    {
        _options = options;
        _logger = _options.Logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        if (_options.OutputLimit <= 0)
            throw new LinuxKitException($"LinuxKitManagerOptions.OutputLimit is {_options.OutputLimit}: give a positive number of bytes.");
        if (_options.ConsoleLogLimit <= 0)
            throw new LinuxKitException($"LinuxKitManagerOptions.ConsoleLogLimit is {_options.ConsoleLogLimit}: give a positive number of bytes.");
        _sessions = new SshSessionPool(_time, _options.OutputLimit);
        _store = store ?? new StateStore(_options.ResolveStateDirectory());
        _ports = new PortAllocator(_store.Scratch("ports"));
        _warmStart = new WarmStart(this, new TemplateStore(_store.Scratch("templates")), _ports, _time, _logger, _options.StopTimeout, _options.TemplateCacheLimit);
        // Created on first use, so that listing or stopping works where QEMU is not installed.
        _hypervisor = new Lazy<IHypervisor>(hypervisorFactory ?? (() => HypervisorFactory.Create(_options, _store.Scratch, _logger)));
        _hypervisorGiven = hypervisorFactory is not null;
    }

    /// <inheritdoc />
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
        var bootStarted = _time.GetTimestamp();

        // The name is checked and the Starting record saved under one lock: two boots of one
        // name at once cannot both pass.
        var record = await _store.LockedAsync(
            () =>
            {
                var claimed = NewRecord(_store.Files(ClaimId(options.Name)), image, resolved, options, hypervisor.Kind) with { StartedAt = _time.GetUtcNow() };
                _store.Save(claimed);
                return claimed;
            },
            cancellationToken).ConfigureAwait(false);
        var id = record.Id;
        var files = record.Files;
        var boot = new Boot(record, options.Name is null ? $"VM {id}" : $"VM {id} ({options.Name})");
        _logger.LogInformation("Booting {Vm} from {Image} ({Format})", boot.Description, resolved.Path, resolved.Format);

        try
        {
            var sshKeyLine = options.SshKey is null
                ? SshKeyPair.Generate(record.SshKeyFile, $"linuxkit-testing-{id}")
                : SshKeyPair.PublicKeyOf(options.SshKey);
            var shares = options.Volumes.Select((v, i) => new VolumeShare($"vol{i}", Path.GetFullPath(v.Key), v.Value)).ToList();
            var metadata = LinuxKitMetadata.Build(sshKeyLine, shares.Select(s => (s.Tag, s.GuestPath)).ToList());
            await PrivateFiles.WriteAsync(files.MetadataIso, MetadataDisk.Build(metadata, sshKeyLine, $"linuxkit-testing-{id}", _time.GetUtcNow().UtcDateTime), cancellationToken).ConfigureAwait(false);
            boot.Record = boot.Record with { Volumes = shares.ToDictionary(s => s.HostPath, s => s.GuestPath) };
            // From the first byte: a warm start copies its template's boot into the log.
            _watchers[id] = ConsoleWatcher.Start(files.ConsoleLog, options.ConsoleOutput, _options.ConsoleLogLimit);

            var ready = await _warmStart.TryRestoreAsync(boot, resolved, options, hypervisor, sshKeyLine, cancellationToken).ConfigureAwait(false);
            if (ready is null)
            {
                var bootDisk = await hypervisor.PrepareBootDiskAsync(resolved, files, cancellationToken).ConfigureAwait(false);
                if (bootDisk is not null) boot.Record = boot.Record with { RuntimeFiles = [bootDisk] };
                var spec = VmSpec.Of(files, resolved, bootDisk, options) with { Volumes = shares, Metadata = metadata };
                ready = await LaunchAsync(boot, hypervisor, spec, options, record.SshKeyFile, options.BootTimeout, restore: null, cancellationToken).ConfigureAwait(false);
            }
            _sessions.Add(id, ready.Session);
            boot.Record = boot.Record with { Status = ContainerStatus.Running, HostKeyFingerprint = ready.Session.HostKeyFingerprint, HostKey = ready.Session.HostKey };
            if (options.Detach) boot.Record = boot.Record with { OwnerPid = null, OwnerStartTime = null };
            await SaveWhileStartingAsync(boot.Record, boot.Description, cancellationToken).ConfigureAwait(false);
            if (options.Detach && _owned.TryGetValue(id, out var bootWatchdog))
            {
                bootWatchdog?.Release();
                _owned[id] = null;
            }
            _logger.LogInformation(
                "{Vm} is ready after {Seconds:0.0} s, {Connections} SSH connections ({Banner}; ssh {User}@127.0.0.1 -p {Port}){How}",
                boot.Description, _time.GetElapsedTime(bootStarted).TotalSeconds,
                ready.Connections, ready.Banner, boot.Record.SshUser, boot.Record.SshPort,
                boot.Record.Template is { } template ? $", restored from warm-start template {template}" : "");
            _logger.LogDebug("{Vm} readiness: {Timeline}", boot.Description, ready.Timeline);
            return boot.Record.ToContainer();
        }
        catch (Exception e)
        {
            foreach (var reservation in boot.Reservations) reservation.Dispose();
            _logger.LogError("{Vm} failed to boot: {Reason}", boot.Description, e.Message);
            await AbandonAsync(boot.Record, boot.Process, e).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>One VM's boot as it goes: the record so far, the ports held, the hypervisor once started.</summary>
    internal sealed class Boot(VmRecord record, string description)
    {
        public VmRecord Record { get; set; } = record;
        public string Description { get; } = description;
        public List<PortReservation> Reservations { get; } = [];
        public ProcessIdentity? Process { get; set; }
    }

    /// <summary>
    /// Reserves the VM's host ports, starts its hypervisor for <paramref name="spec"/> (the ports
    /// filled in), lets <paramref name="restore"/> load a saved state if there is one, and waits
    /// until the guest runs a command over SSH with <paramref name="sshKey"/>.
    /// </summary>
    internal async Task<ReadySession> LaunchAsync(
        Boot boot, IHypervisor hypervisor, VmSpec spec, RunOptions options, string sshKey, TimeSpan timeout,
        Func<ProcessIdentity, CancellationToken, Task>? restore, CancellationToken cancellationToken)
    {
        var sshReservation = options.SshPort == 0 ? _ports.ReserveFree() : _ports.ReserveExact(options.SshPort, "SSH");
        boot.Reservations.Add(sshReservation);
        var forwards = new List<PortForward>();
        foreach (var mapping in options.Ports)
        {
            var reservation = mapping.HostPort == 0
                ? _ports.ReserveFree()
                : _ports.ReserveExact(mapping.HostPort, $"forwarded to guest port {mapping.GuestPort}");
            boot.Reservations.Add(reservation);
            forwards.Add(new PortForward(reservation.Port, mapping.GuestPort));
        }
        var record = boot.Record with { SshPort = sshReservation.Port, Ports = forwards.ToDictionary(f => f.HostPort, f => f.GuestPort) };
        boot.Record = record;
        await SaveWhileStartingAsync(record, boot.Description, cancellationToken).ConfigureAwait(false);
        spec = spec with { SshPort = sshReservation.Port, Ports = forwards };

        // The watchdog starts before the hypervisor: there is no moment in which this process
        // could die and leave a VM that nothing will stop. One per VM, also when a failed warm
        // start is followed by a cold boot: it finds whichever hypervisor wrote the pid file. A
        // detached VM has one too until it runs: a boot nobody will finish is not left running.
        if (!_owned.ContainsKey(record.Id)) _owned[record.Id] = OwnerWatchdog.Start(spec.Files.PidFile, record.RuntimeFiles);
        var process = await hypervisor.StartAsync(spec, cancellationToken).ConfigureAwait(false);
        boot.Process = process;
        foreach (var reservation in boot.Reservations) reservation.Dispose();
        boot.Reservations.Clear();
        record = record with { Pid = process.Pid, PidStartTime = process.StartTime, StartedAt = _time.GetUtcNow() };
        boot.Record = record;
        await SaveWhileStartingAsync(record, boot.Description, cancellationToken).ConfigureAwait(false);

        if (restore is not null) await restore(process, cancellationToken).ConfigureAwait(false);
        var files = record.Files;
        return await SshReadiness.WaitAsync(
            new SshEndpoint("127.0.0.1", record.SshPort, record.SshUser, sshKey),
            hypervisorExited: () => !process.IsAlive(),
            bootFailed: () => BootFailure.InLogsOf(files),
            consoleTail: () => ConsoleLog.Tail(files.ConsoleLog),
            timeout,
            boot.Description,
            restored: restore is not null,
            cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task StopAsync(string id, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        await StopRecordAsync(record, record.StopMode, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
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

    /// <inheritdoc />
    public Task<Container> InspectAsync(string id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Inspect(id));
    }

    // For callers that must answer synchronously (Testcontainers' State property): cheap, one
    // small file and one signal-0.
    internal Container Inspect(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Refresh(Find(id)).ToContainer();
    }

    /// <inheritdoc />
    public Task<Stream> LogsAsync(string id, bool follow, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        var file = ConsoleLog.Open(record.Files.ConsoleLog);
        if (!follow) return Task.FromResult<Stream>(file);
        var process = Identity(record);
        return Task.FromResult<Stream>(new FollowingStream(file, () => process.IsAlive(), cancellationToken));
    }

    /// <inheritdoc />
    public async Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var commandLine = ShellQuoting.Join(command);
        return await Guest(id).UseAsync(session => session.RunAsync(commandLine, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task WriteFileAsync(string id, string guestPath, Stream content, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default) =>
        GuestFiles.WriteAsync(Guest(id), _store.Scratch("spool"), guestPath, content, mode, ownerId, groupId, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]> ReadFileAsync(string id, string guestPath, CancellationToken cancellationToken = default) =>
        GuestFiles.ReadAsync(Guest(id), guestPath, cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<ConsoleLine>> ReadConsoleAsync(string id, DateTimeOffset? since = null, DateTimeOffset? until = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        var timeline = _watchers.TryGetValue(record.Id, out var watcher) ? watcher.Timeline : new ConsoleTimeline();
        byte[] log;
        long firstByte;
        var file = ConsoleLog.Open(record.Files.ConsoleLog);
        await using (file.ConfigureAwait(false))
        {
            // At most the output limit, from the end: a console log can outgrow any buffer.
            var length = file.Length;
            firstByte = Math.Max(0, length - _options.OutputLimit);
            file.Seek(firstByte, SeekOrigin.Begin);
            log = new byte[length - firstByte];
            await file.ReadExactlyAsync(log, cancellationToken).ConfigureAwait(false);
            timeline.Mark(length, _time.GetUtcNow());
        }
        if (firstByte > 0)
        {
            // The first line is cut: it starts after the first newline.
            var skip = Array.IndexOf(log, (byte)'\n') + 1;
            log = log[skip..];
            firstByte += skip;
        }
        return timeline.Lines(log, firstByte, since ?? DateTimeOffset.MinValue, until ?? DateTimeOffset.MaxValue);
    }

    // The VM over its pooled SSH connection; only a running VM has one.
    private GuestConnection Guest(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        if (record.Status != ContainerStatus.Running || !Identity(record).IsAlive())
            throw new LinuxKitException($"VM {record.Id} is not running (status {Refresh(record).Status}); start it before running commands in it.");
        // Without the host key seen at boot anyone on the port would be trusted.
        if (string.IsNullOrEmpty(record.HostKeyFingerprint))
            throw new LinuxKitException($"VM {record.Id}'s record has no host-key pin, so its SSH server cannot be told from another on port {record.SshPort}; it is refused. Stop the VM and start it again.");
        return _sessions.For(record.Id, new SshEndpoint("127.0.0.1", record.SshPort, record.SshUser, record.SshKeyFile), record.HostKeyFingerprint);
    }

    /// <inheritdoc />
    public async Task PauseAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        await HypervisorFor(record).PauseAsync(record.Files.ControlSocket, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task ResumeAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        await HypervisorFor(record).ResumeAsync(record.Files.ControlSocket, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task RemoveAsync(string id, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var record = Find(id);
        if (record.Damage is not null)
        {
            await RemoveDamagedAsync(record, cancellationToken).ConfigureAwait(false);
            return;
        }
        var current = await _store.LockedAsync(() => Refresh(record), cancellationToken).ConfigureAwait(false);
        if (current.Status is ContainerStatus.Running or ContainerStatus.Starting)
            throw new LinuxKitException($"VM {record.Id} is {current.Status.ToString().ToLowerInvariant()}; stop it before removing it.");
        await _store.LockedAsync(() => _store.Delete(record.Id), cancellationToken).ConfigureAwait(false);
        _owned.TryRemove(record.Id, out _);
        _logger.LogInformation("VM {Id} removed", record.Id);
    }

    /// <inheritdoc />
    public async Task<PruneResult> PruneAsync(bool dryRun = false, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A VM of an owner that died should have died with it (its watchdog); one that did not is
        // an orphan nobody will stop.
        var prunable = (await ListAsync(cancellationToken).ConfigureAwait(false))
            .Where(vm => vm.Status is ContainerStatus.Stopped or ContainerStatus.Error || (vm.OwnerPid is not null && !vm.OwnerAlive))
            .ToList();
        if (!dryRun)
        {
            foreach (var vm in prunable)
            {
                if (vm.Status is ContainerStatus.Running or ContainerStatus.Starting) await StopAsync(vm.Id, StopMode.Fast, cancellationToken).ConfigureAwait(false);
                await RemoveAsync(vm.Id, cancellationToken).ConfigureAwait(false);
            }
        }
        // A VMI whose bridge was killed outright has no record left to find it by: the cluster
        // is asked for the SDK's VMIs (by label) when this manager runs KubeVirt VMs.
        IReadOnlyList<string> clusterVmis = HypervisorFactory.Requested(_options) == HypervisorKind.KubeVirt && _hypervisor.Value is KubeVirtHypervisor kubeVirt
            ? await kubeVirt.PruneClusterAsync(dryRun, cancellationToken).ConfigureAwait(false)
            : [];
        return new PruneResult(prunable, _warmStart.Store.Prune(dryRun, _options.TemplateCacheLimit)) { VirtualMachineInstances = clusterVmis };
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<WarmStartTemplate>> ListTemplatesAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        IReadOnlyList<WarmStartTemplate> templates = _warmStart.Store.List().Select(t => new WarmStartTemplate
        {
            Key = t.Template.Key,
            Image = t.Template.Image,
            Memory = t.Template.Memory,
            Cpus = t.Template.Cpus,
            CreatedAt = t.Template.CreatedAt,
            LastUsedAt = t.LastUsed,
            SizeOnDisk = t.Size,
        }).Concat(_warmStart.Store.Failures().Select(f => new WarmStartTemplate
        {
            Key = f.Key,
            Image = f.Image,
            Memory = f.Memory,
            Cpus = f.Cpus,
            CreatedAt = f.FailedAt,
            LastUsedAt = f.FailedAt,
            FailureReason = f.Reason,
        })).ToList();
        return Task.FromResult(templates);
    }

    /// <inheritdoc />
    public async Task RemoveTemplateAsync(string key, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(key);
        // Not from under a process that is making it: that one would commit it after.
        if (!await _warmStart.Store.RemoveWhenFreeAsync(key, TemplateRemovalWait, cancellationToken).ConfigureAwait(false))
            throw new LinuxKitException($"Warm-start template {key} is being made by another process (its lock was held for {TemplateRemovalWait.TotalSeconds:0} s): remove it once that boot is done.");
    }

    private static readonly TimeSpan TemplateRemovalWait = TimeSpan.FromSeconds(30);

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
        _sessions.Dispose();
        foreach (var watchdog in _owned.Values) watchdog?.Dispose();
        foreach (var watcher in _watchers.Values) await watcher.DisposeAsync().ConfigureAwait(false);
        _watchers.Clear();
        _owned.Clear();
    }

    // A VM is stopped and paused by the hypervisor it was started under, whichever this
    // manager boots with (a StopLinuxKit without Hypervisor stops a VM started with one).
    private IHypervisor HypervisorFor(VmRecord record)
    {
        if (record.Hypervisor == _hypervisor.Value.Kind) return _hypervisor.Value;
        if (_hypervisorGiven)
            throw new LinuxKitException($"VM {record.Id} runs under {record.Hypervisor}, this manager uses {_hypervisor.Value.Kind}.");
        return _otherHypervisors.GetOrAdd(record.Hypervisor, kind => HypervisorFactory.Create(_options with { Hypervisor = kind }, _store.Scratch, _logger));
    }

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
        PrivateFiles.CreateFolder(_store.VmDirectory(id));
        return id;
    }

    // StartedAt is set by the caller, on the manager's clock.
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
            // A detached VM is owned until it runs: a boot its process cannot finish is an orphan.
            OwnerPid = Environment.ProcessId,
            OwnerStartTime = ProcessIdentity.Of(Environment.ProcessId)?.StartTime,
            StopMode = options.StopMode,
            Files = files,
        };
    }

    // Status changes during a boot are compare-and-set: a stop from another process wins, and
    // the boot ends (its catch kills what it started).
    private async Task SaveWhileStartingAsync(VmRecord record, string description, CancellationToken cancellationToken)
    {
        if (!await _store.LockedAsync(() => _store.SaveIf(record, ContainerStatus.Starting), cancellationToken).ConfigureAwait(false))
            throw new LinuxKitException($"{description} was stopped by another process while it booted.");
    }

    // A boot that failed or was cancelled leaves nothing running: the hypervisor is killed at
    // once (there is nothing to shut down gracefully), its files are removed and the record
    // says Error, with the console log kept for a post-mortem.
    private async Task AbandonAsync(VmRecord record, ProcessIdentity? process, Exception reason)
    {
        if (process is { } p) await p.KillAsync(CancellationToken.None).ConfigureAwait(false);
        _sessions.Close(record.Id);
        if (_owned.TryRemove(record.Id, out var watchdog)) watchdog?.Dispose();
        if (_watchers.TryRemove(record.Id, out var watcher)) await watcher.DisposeAsync().ConfigureAwait(false);
        RemoveRuntimeFiles(record);
        try
        {
            // A stop from another process during the boot stays what the record says.
            await _store.LockedAsync(() => _store.SaveIf(record with { Status = ContainerStatus.Error, StoppedAt = _time.GetUtcNow() }, ContainerStatus.Starting), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or LinuxKitException)
        {
            _logger.LogWarning("Could not record the failure of VM {Id}: {Reason} (after: {Cause})", record.Id, e.Message, reason.Message);
        }
    }

    private async Task StopRecordAsync(VmRecord record, StopMode mode, CancellationToken cancellationToken)
    {
        if (record.Damage is not null)
        {
            await RemoveDamagedAsync(record, cancellationToken).ConfigureAwait(false);
            return;
        }
        var process = Identity(record);
        var exitCode = record.ExitCode;
        if (IsItsHypervisor(record))
        {
            _logger.LogInformation("Stopping VM {Id} ({Mode})", record.Id, mode);
            if (mode == StopMode.Fast && record.Volumes.Count > 0) await FlushVolumesAsync(record).ConfigureAwait(false);
            // The connection is closed while the guest still answers: after a fast stop its
            // socket is dead, and closing channels on it fails.
            _sessions.Close(record.Id);
            exitCode = await HypervisorFor(record).StopAsync(record.Files, process, mode, _options.StopTimeout, cancellationToken).ConfigureAwait(false);
        }
        else if (record.Status is ContainerStatus.Running or ContainerStatus.Starting)
        {
            exitCode = ExitTrace.Infer(record.Files.HypervisorLog, record.Files.ConsoleLog);
        }
        _sessions.Close(record.Id);
        if (_owned.TryGetValue(record.Id, out var watchdog)) watchdog?.Dispose();
        if (_watchers.TryRemove(record.Id, out var watcher)) await watcher.DisposeAsync().ConfigureAwait(false);
        RemoveRuntimeFiles(record);
        var stopped = record with { Status = ContainerStatus.Stopped, StoppedAt = record.StoppedAt ?? _time.GetUtcNow(), ExitCode = exitCode };
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
            await Guest(record.Id).UseAsync(session => session.RunAsync("sync", budget.Token), budget.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LinuxKitException or SshException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            _logger.LogWarning("Could not flush VM {Id}'s volumes before stopping it: {Reason}", record.Id, e.Message);
        }
    }

    // A record nothing in which is trusted: its folder's own pid file may still name the VM's
    // hypervisor, which is ended only if it proves to be one (see IsHypervisorOf).
    private async Task RemoveDamagedAsync(VmRecord record, CancellationToken cancellationToken)
    {
        if (ProcessIdentity.ReadPidFile(record.Files.PidFile) is { } pid
            && ProcessIdentity.Of(pid) is { } process
            && process.IsHypervisorOf(record.Files.PidFile))
        {
            await process.KillAsync(cancellationToken).ConfigureAwait(false);
        }
        await _store.LockedAsync(() => _store.Delete(record.Id), cancellationToken).ConfigureAwait(false);
        _logger.LogInformation("VM {Id}'s untrusted record and folder removed", record.Id);
    }

    private static void RemoveRuntimeFiles(VmRecord record)
    {
        foreach (var file in record.RuntimeFiles.Append(record.Files.ControlSocket).Append(record.Files.PidFile))
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

    // Whether the record's process is alive and is this VM's hypervisor: only then is it
    // signalled or the VM counted as running.
    private static bool IsItsHypervisor(VmRecord record) => Identity(record).IsHypervisorOf(record.Files.PidFile);

    // A VM whose hypervisor is gone is stopped, whatever its record said.
    private VmRecord Refresh(VmRecord record)
    {
        if (record.Status is not (ContainerStatus.Running or ContainerStatus.Starting)) return record;
        if (IsItsHypervisor(record))
        {
            // A VM no process of this SDK watches (detached) has its log kept in bounds here.
            if (!_watchers.ContainsKey(record.Id)) ConsoleRotation.RotateIfOver(record.Files.ConsoleLog, _options.ConsoleLogLimit);
            return record;
        }
        // Still being prepared (a disk overlay, a warm-start template) by its process: unless
        // that process is known and gone, which leaves it to nobody.
        var ownerGone = record.OwnerPid is not null && !record.OwnerAlive;
        if (record.Status == ContainerStatus.Starting && record.Pid == 0 && !ownerGone && _time.GetUtcNow() - record.StartedAt < TimeSpan.FromMinutes(10))
            return record;
        var stopped = record with
        {
            Status = ContainerStatus.Stopped,
            StoppedAt = _time.GetUtcNow(),
            ExitCode = ExitTrace.Infer(record.Files.HypervisorLog, record.Files.ConsoleLog),
        };
        RemoveRuntimeFiles(stopped);
        _store.Save(stopped);
        return stopped;
    }
}
