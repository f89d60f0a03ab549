using System.Globalization;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors.KubeVirt;

/// <summary>
/// Runs VMs as KubeVirt <c>VirtualMachineInstance</c>s. The VM's local process is the bridge
/// program (LinuxKit.Testing.KubeVirt): it makes the VMI, serves the VM's SSH port and forwards
/// on loopback through the VMI's port-forward subresource, copies its serial console into the
/// console log, and deletes the VMI when it is told to end (SIGTERM, which the stop and the
/// owner's watchdog send). So the manager, the watchdog, readiness and every adapter treat it
/// like a QEMU process; a VMI whose bridge was killed outright is found by its labels and
/// deleted by <see cref="IManager.PruneAsync"/>.
/// </summary>
internal sealed class KubeVirtHypervisor : IHypervisor, IRemoteResources
{
    private const string BridgeAssembly = "LinuxKit.Testing.KubeVirt.dll";

    private readonly KubeVirtOptions _options;
    private readonly Func<string> _scratch;
    private readonly ILogger _logger;
    private readonly Lazy<KubeVirtCluster> _cluster;

    /// <param name="options">The cluster and its limits.</param>
    /// <param name="scratch">Makes the private folder the bridge's runtime configuration is written to.</param>
    /// <param name="logger">Where stops that needed signals are reported.</param>
    public KubeVirtHypervisor(KubeVirtOptions options, Func<string> scratch, ILogger logger)
    {
        _options = options;
        _scratch = scratch;
        _logger = logger;
        _cluster = new Lazy<KubeVirtCluster>(() => KubeVirtCluster.Resolve(options));
    }

    public HypervisorKind Kind => HypervisorKind.KubeVirt;

    /// <summary>
    /// The bridge deletes its VMI on SIGTERM, within a 30 s budget of its own against a slow API
    /// server: the owner's watchdog waits that long before SIGKILL, so a dying test process
    /// leaves no VMI for prune to find.
    /// </summary>
    public TimeSpan TerminationGrace => TimeSpan.FromSeconds(35);

    /// <summary>This machine's name, as the VMIs' owner-host label carries it.</summary>
    public static string OwnerHost => Environment.MachineName.ToLowerInvariant();

    public void Validate(LinuxKitImage image, RunOptions options)
    {
        if (image.Format != ImageFormat.ClusterDisk)
            throw new LinuxKitException(
                $"KubeVirt boots disks the cluster can reach, and '{image.Path}' is a local {image.Format} file. Pass {ClusterDisk.Forms} " +
                "(README: 'KubeVirt' shows how a LinuxKit qcow2 becomes a container disk), or use QEMU for local images.");
        if (_options.Lease < TimeSpan.FromSeconds(3))
            throw new LinuxKitException($"KubeVirtOptions.Lease is {_options.Lease.TotalSeconds:0.###} s: give at least 3 seconds (the bridge renews it every third of it).");
        if (options.Volumes.Count > 0)
            throw new LinuxKitException("KubeVirt VMs cannot mount host folders (the host is not the cluster's node). Copy files in with WriteFileAsync, or use QEMU for volumes.");
        if (options.RestrictNetwork)
            throw new LinuxKitException("RunOptions.RestrictNetwork is not available with KubeVirt (the pod network's policies are the cluster's). Use a NetworkPolicy in the VMIs' namespace, or QEMU.");
        _ = _cluster.Value;
        _ = LocateBridge();
    }

    public Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken) =>
        Task.FromResult<string?>(null);

    public async Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        var userData = Path.Combine(spec.Files.Directory, "user-data");
        await PrivateFiles.WriteAsync(userData, spec.Metadata.ToArray(), cancellationToken).ConfigureAwait(false);
        var args = KubeVirtBridgeCommand.Run(spec, _cluster.Value, _options, userData, OwnerHost);
        _logger.LogDebug("Starting VM {Id} on KubeVirt: {Arguments}", spec.Id, string.Join(' ', args));
        var bridge = await DetachedProcess.StartAsync(DotnetHost(), await BridgeCommandAsync(args, cancellationToken).ConfigureAwait(false), spec.Files.HypervisorLog, spec.Files.HypervisorLog, cancellationToken).ConfigureAwait(false);
        try
        {
            // The bridge writes its pid file once the VMI runs and its ports listen.
            var waited = System.Diagnostics.Stopwatch.StartNew(); // monotonic: a clock jump moves no deadline
            var patience = _options.ScheduleTimeout + TimeSpan.FromSeconds(30);
            while (!File.Exists(spec.Files.PidFile))
            {
                if (!bridge.IsAlive())
                    throw new LinuxKitBootException($"VM {spec.Id}: the KubeVirt VMI did not start: {ConsoleLog.Tail(spec.Files.HypervisorLog, 20)}");
                if (waited.Elapsed > patience)
                    throw new LinuxKitBootException($"VM {spec.Id}: the KubeVirt bridge did not report the VMI running within {_options.ScheduleTimeout.TotalSeconds:0} s: {ConsoleLog.Tail(spec.Files.HypervisorLog, 20)}");
                await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken).ConfigureAwait(false);
            }
            return bridge;
        }
        catch
        {
            await EndAsync(spec.Id, bridge, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    // Deleting the VMI is the stop in both modes: the SDK makes its VMIs with no termination
    // grace period (a test VM holds nothing worth a shutdown), so a graceful stop is a fast one.
    public Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken) =>
        EndAsync(vm.Id, process, cancellationToken);

    public Task PauseAsync(string controlSocket, CancellationToken cancellationToken) =>
        throw new LinuxKitException("KubeVirt VMs cannot be paused by the SDK (KubeVirt's pause subresource is not used yet).");

    public Task ResumeAsync(string controlSocket, CancellationToken cancellationToken) =>
        throw new LinuxKitException("KubeVirt VMs cannot be paused or resumed by the SDK (KubeVirt's pause subresource is not used yet).");

    /// <summary>
    /// Deletes the SDK's VMIs that nothing will stop: those whose bridge on this machine is gone,
    /// and any past its expiry. Returns their names.
    /// </summary>
    public async Task<IReadOnlyList<string>> PruneRemoteAsync(bool dryRun, CancellationToken cancellationToken)
    {
        var outcome = await RunOnceAsync(KubeVirtBridgeCommand.Prune(_cluster.Value, OwnerHost, dryRun), cancellationToken).ConfigureAwait(false);
        return outcome.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    /// <summary>
    /// Where the VMs would go (kubeconfig, context, namespace) and whether the cluster answers
    /// with these credentials and serves KubeVirt.
    /// </summary>
    /// <exception cref="LinuxKitException">There is no kubeconfig or bridge, or the cluster refused.</exception>
    public async Task<(string Cluster, string Answer)> CheckClusterAsync(CancellationToken cancellationToken)
    {
        var cluster = _cluster.Value;
        var answer = await RunOnceAsync(KubeVirtBridgeCommand.Check(cluster), cancellationToken).ConfigureAwait(false);
        return ($"{cluster.Kubeconfig}{(cluster.Context is null ? "" : $", context {cluster.Context}")}", answer.Trim());
    }

    // The bridge deletes its VMI and exits on SIGTERM; one that does not (hung) leaves the
    // delete to a one-shot run. A VMI that even that cannot delete is
    // left to its expiry and a prune: the VM is stopped here either way.
    private async Task<int> EndAsync(string vmId, ProcessIdentity bridge, CancellationToken cancellationToken)
    {
        // A bridge that ended on its own (its VMI failed or was deleted) deleted the VMI on its way
        // out; one killed outright left it to a prune.
        if (!bridge.IsAlive()) return 1;
        var exitCode = await StopEscalation.RunAsync(
            _ => Task.FromResult(bridge.Signal(UnixSignal.Term)), 0, TimeLimits.KubeVirtBridgeStop, bridge, _logger, cancellationToken).ConfigureAwait(false);
        if (exitCode == 0) return exitCode;
        try
        {
            await RunOnceAsync(KubeVirtBridgeCommand.Delete(vmId, _cluster.Value), cancellationToken).ConfigureAwait(false);
        }
        catch (LinuxKitException e)
        {
            _logger.LogWarning("VM {Id}: its VMI {Vmi} may be left on the cluster until a prune after its expiry: {Reason}", vmId, KubeVirtCluster.VmiName(vmId), e.Message);
        }
        return exitCode;
    }

    private async Task<string> RunOnceAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var outcome = await ProcessRunner.RunAsync(DotnetHost(), await BridgeCommandAsync(args, cancellationToken).ConfigureAwait(false), TimeLimits.KubeVirtOneShot, cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode != 0)
            throw new LinuxKitException($"The KubeVirt bridge could not {args[0]} ({string.Join(' ', args)}): {outcome.Stderr.Trim()}");
        return outcome.Stdout;
    }

    // The bridge runs on this process's runtime, from wherever its assembly was found: the
    // runtime configuration is written here, since a referenced program's own rarely travels.
    private async Task<IReadOnlyList<string>> BridgeCommandAsync(IReadOnlyList<string> args, CancellationToken cancellationToken)
    {
        var runtimeConfig = Path.Combine(_scratch(), "bridge.runtimeconfig.json");
        var version = Environment.Version;
        var framework = $"{version.Major}.{version.Minor}";
        var content = System.Text.Json.JsonSerializer.Serialize(new
        {
            runtimeOptions = new { tfm = $"net{framework}", rollForward = "LatestMajor", framework = new { name = "Microsoft.NETCore.App", version = $"{framework}.0" } },
        });
        if (!File.Exists(runtimeConfig) || await File.ReadAllTextAsync(runtimeConfig, cancellationToken).ConfigureAwait(false) != content)
        {
            var staging = $"{runtimeConfig}.{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}";
            await PrivateFiles.WriteAsync(staging, System.Text.Encoding.UTF8.GetBytes(content), cancellationToken).ConfigureAwait(false);
            File.Move(staging, runtimeConfig, overwrite: true);
        }
        return ["exec", "--runtimeconfig", runtimeConfig, LocateBridge(), .. args];
    }

    private string LocateBridge()
    {
        if (_options.Bridge is { } given)
            return File.Exists(given) ? Path.GetFullPath(given) : throw new LinuxKitException($"The KubeVirt bridge '{given}' (KubeVirtOptions.Bridge) does not exist.");
        var candidates = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(KubeVirtHypervisor).Assembly.Location) ?? "" }
            .Where(d => d.Length > 0)
            .Select(d => Path.Combine(d, BridgeAssembly));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new LinuxKitException(
                $"KubeVirt VMs need the LinuxKit.Testing.KubeVirt package ({BridgeAssembly} was not found beside the application or LinuxKit.Testing.dll): 'dotnet add package LinuxKit.Testing.KubeVirt', or set KubeVirtOptions.Bridge.");
    }

    // The host that runs this process when it is 'dotnet', else the one the SDK names, else PATH's.
    private static string DotnetHost()
    {
        if (Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        if (LinuxKitEnvironment.Read("DOTNET_HOST_PATH") is { } sdkHost && File.Exists(sdkHost)) return sdkHost;
        if (LinuxKitEnvironment.Read("DOTNET_ROOT") is { } root && File.Exists(Path.Combine(root, "dotnet"))) return Path.Combine(root, "dotnet");
        return ProcessRunner.FindOnPath("dotnet")
            ?? throw new LinuxKitException("The KubeVirt bridge runs on .NET, and no 'dotnet' host was found (DOTNET_HOST_PATH, DOTNET_ROOT, PATH). Install the .NET runtime or put dotnet on PATH.");
    }
}
