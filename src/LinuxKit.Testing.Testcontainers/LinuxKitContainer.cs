using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
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
public sealed partial class LinuxKitContainer : IContainer
{
    private const string NoDockerNetworks =
        "A LinuxKit VM is not attached to Docker networks: it runs under QEMU with user-mode networking. " +
        "Publish its ports with WithPortBinding and reach them on 127.0.0.1 (also from other containers or VMs, through the host).";

    private readonly LinuxKitConfiguration _configuration;
    private readonly LinuxKitManager _manager;
    private readonly StartupSequence _start;
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
        _start = new StartupSequence(configuration, _manager, Logger);
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
            Creating?.Invoke(this, EventArgs.Empty);
            CreatedTime = DateTime.UtcNow;
            _state = TestcontainersStates.Created;
            Created?.Invoke(this, EventArgs.Empty);
            Starting?.Invoke(this, EventArgs.Empty);
            // A restart boots a fresh VM; the old one's folder goes at disposal.
            _vm = null;
            try
            {
                await _start.RunAsync(this, OnBootedAsync, ct).ConfigureAwait(false);
            }
            catch
            {
                MarkStopped();
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

    /// <summary>Stops the VM if it runs and removes everything it left (state folder, overlay, keys).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _disposed = true;
        await _manager.DisposeAsync().ConfigureAwait(false);
        _lifecycle.Dispose();
    }

    private async Task OnBootedAsync(Container vm, CancellationToken cancellationToken)
    {
        _vm = vm;
        StartedTime = DateTime.UtcNow;
        _state = TestcontainersStates.Running;
        (MacAddress, IpAddress) = await _manager.ReadGuestNetworkAsync(vm.Id, cancellationToken).ConfigureAwait(false);
    }

    private bool IsRunning() => _vm is not null && _start.IsRunning(_vm.Id);

    private void MarkStopped()
    {
        _state = _vm is null ? TestcontainersStates.Undefined : TestcontainersStates.Exited;
        StoppedTime = DateTime.UtcNow;
    }

    private Container RequireStarted() =>
        _vm ?? throw new InvalidOperationException("The VM has not been started: call StartAsync first.");
}
