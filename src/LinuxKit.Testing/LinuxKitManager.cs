using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Lifecycle;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing;

/// <summary>
/// Boots LinuxKit images, waits until they answer over SSH, runs commands in them, streams
/// their serial console and stops them. VMs are recorded in a state directory, so another
/// process (another build step, another test run) can list, use and stop detached VMs.
/// Disposing the manager stops the VMs it started that are not detached.
/// </summary>
/// <remarks>
/// The manager composes the lifecycle parts (see <c>Lifecycle/</c>) and delegates to them: the
/// booter, the launcher every boot goes through, warm start, the stopper, housekeeping, the
/// registry of records and the per-VM runtime.
/// </remarks>
public sealed class LinuxKitManager : IManager
{
    private readonly LinuxKitManagerOptions _options;
    private readonly ILogger _logger;
    private readonly StateStore _store;
    private readonly TimeProvider _time;
    private readonly HypervisorChoice _hypervisors;
    private readonly VmRuntime _runtime;
    private readonly VmRegistry _registry;
    private readonly GuestAccess _guests;
    private readonly WarmStart _warmStart;
    private readonly VmBooter _booter;
    private readonly VmStopper _stopper;
    private readonly VmHousekeeping _housekeeping;
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
        _store = store ?? new StateStore(_options.ResolveStateDirectory());
        var ports = new PortAllocator(_store.Scratch("ports"));
        _hypervisors = new HypervisorChoice(_options, hypervisorFactory, _store.Scratch, _logger);
        _runtime = new VmRuntime(new SshSessionPool(_time, _options.OutputLimit));
        _registry = new VmRegistry(_store, _runtime, _time, _options.ConsoleLogLimit);
        _guests = new GuestAccess(_registry, _runtime);
        var launcher = new VmLauncher(ports, _registry, _runtime, _time);
        var templates = new TemplateStore(_store.Scratch("templates"));
        _warmStart = new WarmStart(launcher, templates, ports, _time, _logger, _options.StopTimeout, _options.TemplateCacheLimit);
        _booter = new VmBooter(_registry, _runtime, launcher, _warmStart, _options, _logger, _time);
        _stopper = new VmStopper(_registry, _runtime, _hypervisors, _guests, _options.StopTimeout, _logger, _time);
        _housekeeping = new VmHousekeeping(_registry, _runtime, _stopper, _hypervisors, templates, _options.TemplateCacheLimit, _logger);
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
        var boot = FirmwareChoice.Decide(resolved, options.Firmware, options.Architecture);
        if (boot.Reason is { } reason) _logger.LogInformation("Image {Image}: {Reason}", resolved.Path, reason);
        var hypervisor = _hypervisors.Default;
        if (options.DirectKernelBoot == true)
        {
            resolved = DirectKernel.Apply(resolved, boot);
            if (resolved.DirectKernel?.BootLoaderDoesMore is { } skipped)
                _logger.LogInformation("Image {Image}: booting its kernel directly as asked, without what its boot loader would also do ('{Line}')", resolved.Path, skipped);
        }
        else if (options.DirectKernelBoot is null && hypervisor.LoadsKernelsFromImages)
        {
            resolved = DirectKernel.ApplyWhereUnchanged(resolved, boot, out var firmwareBecause);
            if (firmwareBecause is not null) _logger.LogDebug("Image {Image}: booting through its firmware and boot loader: {Reason}", resolved.Path, firmwareBecause);
        }
        if (resolved.DirectKernel is { } direct) _logger.LogDebug("Image {Image}: booting its kernel directly, as {Source} says: {CommandLine}", resolved.Path, direct.Source, direct.CommandLine);
        hypervisor.Validate(resolved, options);
        return await _booter.RunAsync(image, resolved, options, hypervisor, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task StopAsync(string id, CancellationToken cancellationToken = default) => StopAsync(id, mode: null, cancellationToken);

    /// <inheritdoc />
    public Task StopAsync(string id, StopMode mode, CancellationToken cancellationToken = default) => StopAsync(id, (StopMode?)mode, cancellationToken);

    private async Task StopAsync(string id, StopMode? mode, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // A folder deleted under a running VM takes its record along, not its process.
        if (StateStore.IsId(id) && _store.Load(id) is null && await _runtime.StopOrphanedAsync(id).ConfigureAwait(false))
        {
            _logger.LogWarning("VM {Id}'s folder was deleted while it ran; its watchdog stopped its hypervisor", id);
            return;
        }
        var record = Find(id);
        await _stopper.StopAsync(record, mode ?? record.StopMode, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<Container>> ListAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _registry.ListAsync(cancellationToken);
    }

    /// <inheritdoc />
    public Task<Container> InspectAsync(string id, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(Inspect(id));
    }

    // For callers that must answer synchronously (Testcontainers' State property): cheap, one
    // small file and one signal-0.
    internal Container Inspect(string id) => _registry.Refresh(Find(id)).ToContainer();

    /// <inheritdoc />
    public Task<Stream> LogsAsync(string id, bool follow, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        var file = ConsoleLog.Open(record.Files.ConsoleLog);
        if (!follow) return Task.FromResult<Stream>(file);
        var process = record.Process;
        return Task.FromResult<Stream>(new FollowingStream(file, () => process.IsAlive(), cancellationToken));
    }

    /// <inheritdoc />
    public async Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var shellCommand = ShellCommand.FromArguments(command);
        return await Guest(id).UseAsync(session => session.RunAsync(shellCommand, cancellationToken), cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public Task WriteFileAsync(string id, string guestPath, Stream content, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default) =>
        GuestFiles.WriteAsync(Guest(id), _store.Scratch("spool"), guestPath, content, mode, ownerId, groupId, cancellationToken);

    /// <inheritdoc />
    public Task<byte[]> ReadFileAsync(string id, string guestPath, CancellationToken cancellationToken = default) =>
        GuestFiles.ReadAsync(Guest(id), guestPath, _options.OutputLimit, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<ConsoleLine>> ReadConsoleAsync(string id, DateTimeOffset? since = null, DateTimeOffset? until = null, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        return ConsoleReader.ReadAsync(record.Files, _runtime.Timeline(record.Id), _options.OutputLimit, _time.GetUtcNow(), since, until, cancellationToken);
    }

    /// <inheritdoc />
    public Task PauseAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        record.RequireHere("paused");
        return _hypervisors.For(record).PauseAsync(record.Files.ControlSocket, cancellationToken);
    }

    /// <inheritdoc />
    public Task ResumeAsync(string id, CancellationToken cancellationToken = default)
    {
        var record = Find(id);
        record.RequireHere("resumed");
        return _hypervisors.For(record).ResumeAsync(record.Files.ControlSocket, cancellationToken);
    }

    /// <inheritdoc />
    public Task RemoveAsync(string id, CancellationToken cancellationToken = default) =>
        RemoveAsync(id, force: false, cancellationToken);

    /// <inheritdoc />
    public Task RemoveAsync(string id, bool force, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _housekeeping.RemoveAsync(id, force, cancellationToken);
    }

    /// <inheritdoc />
    public Task<PruneResult> PruneAsync(bool dryRun = false, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _housekeeping.PruneAsync(dryRun, cancellationToken);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<WarmStartTemplate>> ListTemplatesAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(_warmStart.ListTemplates());
    }

    /// <inheritdoc />
    public Task RemoveTemplateAsync(string key, CancellationToken cancellationToken = default) =>
        RemoveTemplateAsync(key, force: false, cancellationToken);

    /// <inheritdoc />
    public Task RemoveTemplateAsync(string key, bool force, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentException.ThrowIfNullOrEmpty(key);
        return _warmStart.RemoveTemplateAsync(key, force, cancellationToken);
    }

    /// <summary>Stops the VMs this manager started that are not detached and removes their folders.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        await Task.WhenAll(_runtime.Owned.Select(async id =>
        {
            try
            {
                if (_store.Load(id) is not { } record) return;
                await _stopper.StopAsync(record, record.StopMode, CancellationToken.None).ConfigureAwait(false);
                _store.Delete(id);
            }
            catch (Exception e) when (e is LinuxKitException or IOException)
            {
                _logger.LogWarning("Could not stop VM {Id}: {Reason}", id, e.Message);
            }
        })).ConfigureAwait(false);
        await _runtime.DisposeAsync().ConfigureAwait(false);
    }

    private VmRecord Find(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _registry.Find(id);
    }

    private GuestConnection Guest(string id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _guests.For(id);
    }
}
