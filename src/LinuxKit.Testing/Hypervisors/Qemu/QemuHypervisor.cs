using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>
/// Runs VMs with qemu-system-x86_64 or qemu-system-aarch64: finds the binaries and UEFI
/// firmware, picks the accelerator, starts and controls QEMU.
/// </summary>
internal sealed class QemuHypervisor : IHypervisor, IMemorySnapshots
{
    private const string InstallHint =
        "Install QEMU: Debian/Ubuntu 'sudo apt-get install qemu-system-x86 qemu-utils', Fedora 'sudo dnf install qemu-system-x86 qemu-img', macOS 'brew install qemu'; " +
        "or set LINUXKIT_TESTING_QEMU to the qemu-system-x86_64 binary.";

    private static readonly ConcurrentDictionary<string, Lazy<Task<Accelerator>>> DetectedAccelerators = new();
    private readonly ConcurrentDictionary<string, bool> _toldOnce = new();

    private readonly Accelerator _requestedAccelerator;
    private readonly ILogger _logger;
    private readonly Func<string>? _hostFolder;
    private readonly Lazy<string> _aarch64Binary;
    private readonly ConcurrentDictionary<GuestArchitecture, Lazy<UefiFirmware>> _uefi = new();
    private readonly Lazy<string?> _qboot;

    /// <param name="binary">qemu-system-x86_64, by path or name; null for LINUXKIT_TESTING_QEMU, else PATH.</param>
    /// <param name="accelerator">Auto to use KVM where it runs a guest, else TCG.</param>
    /// <param name="logger">Where the choice of accelerator and the VMs' starts are logged.</param>
    /// <param name="hostFolder">A private folder of the state directory (made on first use) that keeps what was found about this host; null to keep nothing.</param>
    public QemuHypervisor(string? binary, Accelerator accelerator, ILogger logger, Func<string>? hostFolder = null)
    {
        _requestedAccelerator = accelerator;
        _logger = logger;
        _hostFolder = hostFolder;
        var requested = binary ?? LinuxKitEnvironment.Read(LinuxKitEnvironment.Qemu) ?? "qemu-system-x86_64";
        Binary = ProcessRunner.FindOnPath(requested)
            ?? throw new LinuxKitException($"QEMU binary '{requested}' was not found. {InstallHint}");
        var besideBinary = Path.Combine(Path.GetDirectoryName(Binary)!, "qemu-img");
        QemuImg = File.Exists(besideBinary) ? besideBinary : ProcessRunner.FindOnPath("qemu-img")
            ?? throw new LinuxKitException($"qemu-img was not found next to {Binary} or on PATH; it makes the disk overlays. {InstallHint}");
        _aarch64Binary = new Lazy<string>(() => FindAarch64(Binary));
        _qboot = new Lazy<string?>(() => FindQboot(Binary));
    }

    /// <summary>
    /// QEMU's minimal BIOS (qboot.rom) for x86_64 kernel+initrd boots: from the data folder of the
    /// QEMU install (Debian's qemu-system-data, Homebrew's qemu); null when it is not there, or
    /// when <see cref="LinuxKitEnvironment.Qboot"/> turns it off (then SeaBIOS boots them).
    /// </summary>
    public string? Qboot => LinuxKitEnvironment.IsOn(LinuxKitEnvironment.Qboot) ? _qboot.Value : null;

    private static string? FindQboot(string binary)
    {
        var prefix = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(binary)));
        return new[] { prefix is null ? null : Path.Combine(prefix, "share", "qemu", "qboot.rom"), "/usr/share/qemu/qboot.rom" }
            .OfType<string>()
            .FirstOrDefault(File.Exists);
    }

    // Looked for when an arm64 guest first boots: a host that runs only x86_64 guests needs none.
    private static string FindAarch64(string x86Binary)
    {
        var requested = LinuxKitEnvironment.Read(LinuxKitEnvironment.QemuAarch64);
        var beside = Path.Combine(Path.GetDirectoryName(x86Binary)!, "qemu-system-aarch64");
        return (requested is not null ? ProcessRunner.FindOnPath(requested) : File.Exists(beside) ? beside : ProcessRunner.FindOnPath("qemu-system-aarch64"))
            ?? throw new LinuxKitException(
                $"An arm64 guest needs qemu-system-aarch64, which was not found ({(requested is not null ? $"{LinuxKitEnvironment.QemuAarch64} is '{requested}'" : $"not beside {x86Binary}, nor on PATH")}). " +
                $"Install it: Debian/Ubuntu 'sudo apt-get install qemu-system-arm', Fedora 'sudo dnf install qemu-system-aarch64', macOS 'brew install qemu'; or set {LinuxKitEnvironment.QemuAarch64}.");
    }

    /// <summary>The QEMU binary for guests of <paramref name="architecture"/>.</summary>
    /// <exception cref="LinuxKitException">qemu-system-aarch64 is wanted and not installed.</exception>
    public string BinaryFor(GuestArchitecture architecture) => architecture == GuestArchitecture.Arm64 ? _aarch64Binary.Value : Binary;

    /// <summary>The UEFI firmware for guests of <paramref name="architecture"/>, found once.</summary>
    /// <exception cref="LinuxKitException">None is installed.</exception>
    public UefiFirmware UefiFor(GuestArchitecture architecture) =>
        _uefi.GetOrAdd(architecture, a => new Lazy<UefiFirmware>(() => UefiFirmware.Find(a, BinaryFor(a)))).Value;

    public HypervisorKind Kind => HypervisorKind.Qemu;

    public bool LoadsKernelsFromImages => true;

    public string Binary { get; }

    public string QemuImg { get; }

    // QEMU runs every local format and option RunOptions.Validate lets through.
    public void Validate(LinuxKitImage image, RunOptions options) => image.RequireLocal(Kind);

    public async Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken)
    {
        if (image.Format is not (ImageFormat.Qcow2 or ImageFormat.Vmdk or ImageFormat.Raw)) return null;
        var overlay = files.Overlay;
        await DiskOverlay.CreateAsync(QemuImg, image, overlay, cancellationToken).ConfigureAwait(false);
        return overlay;
    }

    public async Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        var architecture = spec.Boot.Architecture;
        var binary = BinaryFor(architecture);
        var accelerator = await ResolveAcceleratorAsync(architecture, cancellationToken).ConfigureAwait(false);
        var uefi = spec.Boot.Uefi ? UefiFor(architecture) : null;
        // The VM's own variables store, from the firmware's template (a warm-start clone brings
        // its template's).
        if (uefi is not null && !File.Exists(spec.UefiVars)) PrivateFiles.Copy(uefi.VarsTemplate, spec.UefiVars);
        // -daemonize sets QEMU's umask to 027: what it creates itself would be readable by the
        // group. So the files it writes exist already, 0600 (it opens them as they are), and its
        // control socket is made 0600 once it listens.
        foreach (var file in new[] { spec.Files.ConsoleLog, spec.Files.FirmwareLog, spec.MemoryFile is { Shared: true } memory ? memory.Path : null })
        {
            if (file is not null && !File.Exists(file)) PrivateFiles.Create(file).Dispose();
        }
        spec.Files.PrepareControlSocketFolder();
        var args = QemuCommandBuilder.Build(spec, accelerator, uefi, Qboot);
        _logger.LogDebug("Starting VM {Id}: {Binary} {Arguments}", spec.Id, binary, string.Join(' ', args));
        // Not cancelled midway: killing the daemonizing parent could orphan a QEMU that already
        // forked, with nothing knowing its PID. Start-up takes a moment; the caller cancels after.
        var outcome = await ProcessRunner.RunAsync(binary, args, TimeSpan.FromSeconds(60), CancellationToken.None).ConfigureAwait(false);
        if (outcome.ExitCode != 0)
        {
            // A daemonizing QEMU may report a failure of its child only in its -D log.
            var reason = outcome.Stderr.Trim() is { Length: > 0 } stderr ? stderr : $"nothing on stderr; its log {spec.Files.HypervisorLog} says: {LogTail(spec.Files.HypervisorLog)}";
            var hint = reason.Contains("host forwarding", StringComparison.OrdinalIgnoreCase)
                ? " A forwarded host port is already in use on 127.0.0.1: choose another port, or 0 for a free one."
                : "";
            throw new LinuxKitException(
                $"QEMU could not start VM {spec.Id} (exit code {outcome.ExitCode}): {reason}{hint}");
        }
        try
        {
            PrivateFiles.MakeFilePrivate(spec.Files.ControlSocket);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Its folder is 0700 all the same; a QEMU that failed at once is reported below.
        }
        var pid = ProcessIdentity.ReadPidFile(spec.Files.PidFile)
            ?? throw new LinuxKitException($"QEMU reported VM {spec.Id} started, but its pid file {spec.Files.PidFile} holds no PID. See {spec.Files.HypervisorLog}.");
        return ProcessIdentity.Of(pid)
            ?? throw new LinuxKitException($"QEMU started VM {spec.Id} as PID {pid}, which exited at once. See {spec.Files.HypervisorLog} and {spec.Files.ConsoleLog}.");
    }

    private static string LogTail(string path)
    {
        try
        {
            var lines = File.ReadLines(path).TakeLast(5).ToList();
            return lines.Count == 0 ? "nothing" : string.Join(" | ", lines);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "nothing (it cannot be read)";
        }
    }

    // QEMU ends at once on 'quit' (its overlay is thrown away after); 'system_powerdown' is
    // the ACPI power button, which the guest may ignore.
    public Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken) =>
        mode == StopMode.Fast
            ? StopEscalation.RunAsync(token => SendAsync(vm.ControlSocket, "quit", token), 128 + (int)UnixSignal.Kill, TimeLimits.QemuQuit, process, _logger, cancellationToken)
            : StopEscalation.RunAsync(token => SendAsync(vm.ControlSocket, "system_powerdown", token), 0, gracePeriod, process, _logger, cancellationToken);

    // False when the command could not be delivered. QEMU may close the socket before it answers
    // 'quit': once the command was written, that counts as delivered.
    private async Task<bool> SendAsync(string controlSocket, string command, CancellationToken cancellationToken)
    {
        QmpClient qmp;
        try
        {
            qmp = await QmpClient.ConnectAsync(controlSocket, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or LinuxKitException)
        {
            _logger.LogDebug(e, "QMP '{Command}' through {Socket} failed", command, controlSocket);
            return false;
        }
        await using (qmp.ConfigureAwait(false))
        {
            try
            {
                await qmp.ExecuteAsync(command, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (command == "quit" && e is IOException or System.Net.Sockets.SocketException or LinuxKitException)
            {
                // The socket closed under the answer: QEMU is quitting.
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or LinuxKitException)
            {
                _logger.LogDebug(e, "QMP '{Command}' through {Socket} failed", command, controlSocket);
                return false;
            }
            return true;
        }
    }

    public Task PauseAsync(string controlSocket, CancellationToken cancellationToken) => RunQmpAsync(controlSocket, "stop", cancellationToken);

    public Task ResumeAsync(string controlSocket, CancellationToken cancellationToken) => RunQmpAsync(controlSocket, "cont", cancellationToken);

    private static async Task RunQmpAsync(string controlSocket, string command, CancellationToken cancellationToken)
    {
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(TimeLimits.Qmp);
        try
        {
            var qmp = await QmpClient.ConnectAsync(controlSocket, budget.Token).ConfigureAwait(false);
            await using var qmpDisposal = qmp.ConfigureAwait(false);
            await qmp.ExecuteAsync(command, budget.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            throw new LinuxKitException($"Cannot reach QEMU's control socket {controlSocket} for '{command}': {e.Message}", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LinuxKitException($"QEMU's control socket {controlSocket} did not answer '{command}' within {TimeLimits.Qmp.TotalSeconds:0} s (is another QMP client connected, or is QEMU hung?).", e);
        }
    }

    public async Task<string> IdentityAsync(VmSpec canonical, CancellationToken cancellationToken)
    {
        var architecture = canonical.Boot.Architecture;
        var accelerator = await ResolveAcceleratorAsync(architecture, cancellationToken).ConfigureAwait(false);
        var uefi = canonical.Boot.Uefi ? UefiFor(architecture) : null;
        // -cpu max is whatever this host's CPU offers, and saved CPU state does not move to
        // another model: a state directory on a shared home reaches other machines.
        return string.Join('\n', QemuCommandBuilder.Build(canonical, accelerator, uefi, Qboot)) + "\nhost-cpu=" + HostCpuModel.Value;
    }

    private static readonly Lazy<string> HostCpuModel = new(() =>
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown";
        }
    });

    private static readonly System.Text.Json.Nodes.JsonObject IgnoreSharedRam = new()
    {
        ["capabilities"] = new System.Text.Json.Nodes.JsonArray(new System.Text.Json.Nodes.JsonObject { ["capability"] = "x-ignore-shared", ["state"] = true }),
    };

    public async Task SaveAsync(string controlSocket, string stateFile, CancellationToken cancellationToken)
    {
        await WithMigrationLimitAsync(controlSocket, "save the VM's state", async (qmp, token) =>
        {
            await qmp.ExecuteAsync("migrate-set-capabilities", IgnoreSharedRam.DeepClone().AsObject(), token).ConfigureAwait(false);
            // Frozen first: the RAM file must not change after the device state is taken.
            await qmp.ExecuteAsync("stop", token).ConfigureAwait(false);
            // Made 0600 first: the shell QEMU runs has its umask (027), and `>` keeps a file's mode.
            PrivateFiles.Create(stateFile).Dispose();
            await qmp.ExecuteAsync("migrate", new() { ["uri"] = "exec:cat > " + Ssh.ShellQuoting.Quote(stateFile) }, token).ConfigureAwait(false);
            await WaitForMigrationAsync(qmp, exited: () => false, token).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task RestoreAsync(string controlSocket, string stateFile, Func<bool> exited, CancellationToken cancellationToken)
    {
        await WithMigrationLimitAsync(controlSocket, "load the template's state", async (qmp, token) =>
        {
            await qmp.ExecuteAsync("migrate-set-capabilities", IgnoreSharedRam.DeepClone().AsObject(), token).ConfigureAwait(false);
            await qmp.ExecuteAsync("migrate-incoming", new() { ["uri"] = "exec:cat " + Ssh.ShellQuoting.Quote(stateFile) }, token).ConfigureAwait(false);
            await WaitForMigrationAsync(qmp, exited, token).ConfigureAwait(false);
            // The template was frozen when it was saved, so the clone arrives frozen.
            await qmp.ExecuteAsync("cont", token).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
    }

    public Task CreateOverlayAsync(string templateDisk, string overlay, CancellationToken cancellationToken) =>
        DiskOverlay.CreateAsync(QemuImg, templateDisk, "qcow2", overlay, cancellationToken);

    private static async Task WithMigrationLimitAsync(string controlSocket, string what, Func<QmpClient, CancellationToken, Task> steps, CancellationToken cancellationToken)
    {
        using var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        budget.CancelAfter(TimeLimits.Migration);
        try
        {
            var qmp = await QmpClient.ConnectAsync(controlSocket, budget.Token).ConfigureAwait(false);
            await using var qmpDisposal = qmp.ConfigureAwait(false);
            await steps(qmp, budget.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            throw new LinuxKitException($"QEMU could not {what}: its control socket {controlSocket} failed ({e.Message}).", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new LinuxKitException($"QEMU did not {what} within {TimeLimits.Migration.TotalSeconds:0} s.", e);
        }
    }

    // Both ends report the migration's progress through query-migrate.
    private static async Task WaitForMigrationAsync(QmpClient qmp, Func<bool> exited, CancellationToken cancellationToken)
    {
        while (true)
        {
            var info = await qmp.ExecuteAsync("query-migrate", cancellationToken).ConfigureAwait(false);
            var status = info?["status"]?.GetValue<string>();
            switch (status)
            {
                case "completed":
                    return;
                case "failed" or "cancelled":
                    throw new LinuxKitException($"QEMU's migration {status}: {info?["error-desc"]?.GetValue<string>() ?? "no reason given"}.");
            }
            if (exited()) throw new LinuxKitException("QEMU exited while loading the saved state.");
            await Task.Delay(TimeSpan.FromMilliseconds(10), cancellationToken).ConfigureAwait(false);
        }
    }

    private Task<Accelerator> ResolveAcceleratorAsync(GuestArchitecture architecture, CancellationToken cancellationToken)
    {
        var requested = _requestedAccelerator;
        if (requested == Accelerator.Auto && LinuxKitEnvironment.Read<Accelerator>(LinuxKitEnvironment.Accelerator) is { } fromEnvironment)
            requested = fromEnvironment;
        var (decided, message) = GuestAcceleration.Decide(requested, architecture, RuntimeInformation.OSArchitecture);
        if (message is not null && _toldOnce.TryAdd(message, true)) _logger.LogInformation(LogEvents.Notice, "{Message}", message);
        if (decided is { } accelerator) return Task.FromResult(accelerator);
        // Detected once per process and binary: the probe costs a QEMU start.
        return DetectedAccelerators.GetOrAdd(BinaryFor(architecture), binary => new Lazy<Task<Accelerator>>(() => architecture == GuestArchitecture.Arm64
                ? Task.FromResult(AcceleratorProbe.DiagnoseArm64Host())
                : DetectAsync(binary, _logger))).Value
            .WaitAsync(cancellationToken);
    }

    private async Task<Accelerator> DetectAsync(string binary, ILogger logger)
    {
        var (accelerator, whyNotKvm, cached) = _hostFolder is null
            ? await DiagnoseWithoutCacheAsync(binary).ConfigureAwait(false)
            : await AcceleratorProbe.DiagnoseOnceAsync(CacheFolders(_hostFolder()), AcceleratorProbe.HostKey(binary), () => AcceleratorProbe.DiagnoseAsync(binary)).ConfigureAwait(false);
        // Nothing to fix in the build or test that boots the VM: a notice, not a warning (a
        // warning fails builds that treat warnings as errors). `doctor` gives the whole reason.
        if (whyNotKvm is not null)
        {
            logger.LogInformation(LogEvents.Notice, "QEMU runs VMs under TCG software emulation, several times slower than KVM: {Reason}{Cached}. `linuxkit-testing doctor` says what KVM needs.",
                whyNotKvm, cached ? " (found earlier since this host booted)" : "");
        }
        return accelerator;
    }

    // The state directory's copy says what its VMs ran under; the user's copy spares a process
    // with a new state directory (a CI job, a test class of its own) the probe.
    private static string[] CacheFolders(string stateHostFolder) =>
        AcceleratorProbe.UserCacheFolder() is { } user ? [stateHostFolder, user] : [stateHostFolder];

    private static async Task<(Accelerator, string?, bool)> DiagnoseWithoutCacheAsync(string binary)
    {
        var (accelerator, whyNotKvm) = await AcceleratorProbe.DiagnoseAsync(binary).ConfigureAwait(false);
        return (accelerator, whyNotKvm, false);
    }
}
