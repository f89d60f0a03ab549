using System.Reflection;
using System.Text;
using Microsoft.Extensions.Logging;
using LinuxKit.Testing.Networking;

namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// A VM shared by the tests of a fixture, independent of the test framework: the xUnit v2, xUnit
/// v3 and NUnit fixtures derive from it and only map their lifetimes onto
/// <see cref="ConfigureAndStartAsync"/> and <see cref="DisposeAsync"/>. It boots the configured image, or
/// attaches to a VM that a build step already started (the MSBuild hand-off), and stops only
/// what it booted.
/// </summary>
/// <remarks>
/// Configuration, first match wins: the environment variable LINUXKIT_VM_ID (attach to that VM,
/// found in the state directory LINUXKIT_TESTING_HOME); what a subclass sets in
/// <see cref="Configure"/>; a <see cref="LinuxKitImageAttribute"/> on the fixture's class, then
/// on the test assembly; the environment variable LINUXKIT_IMAGE.
/// </remarks>
public class SharedVm : IAsyncDisposable
{
    private readonly Action<string> _diagnostics;
    private readonly ConsoleLines _console = new();
    private LinuxKitManager? _manager;
    private Container? _container;
    private bool _booted;
    private bool _disposed;

    /// <summary>Creates the shared VM; nothing starts before <see cref="StartAsync"/>.</summary>
    /// <param name="diagnostics">Where boot progress and the serial console go (the framework's diagnostic channel).</param>
    public SharedVm(Action<string>? diagnostics = null)
    {
        var channel = diagnostics ?? (_ => { });
        _diagnostics = message =>
        {
            lock (_bootLog)
            {
                if (_bootLog.Count < BootLogLimit) _bootLog.Add(message);
            }
            channel(message);
        };
    }

    // The boot's progress and console as the diagnostic channel got them, for the first test's
    // output: a runner that shows no diagnostics (Microsoft Testing Platform under dotnet test)
    // still shows test output.
    private const int BootLogLimit = 2000;
    private readonly List<string> _bootLog = [];
    private bool _bootLogShown;

    /// <summary>The image to boot, when this VM boots one.</summary>
    public string? Image { get; set; }

    // The image the `dotnet test` hand-off was given at build time (the MSBuild package's targets
    // write it into the test assembly), for an error that says why no VM reached the tests.
    private const string BuildImageMetadata = "LinuxKit.Testing.HandOffImage";
    private string? _buildImage;

    private static readonly RunOptions Unconfigured = new();
    private static readonly LinuxKitManagerOptions UnconfiguredManager = new();

    /// <summary>How to run it.</summary>
    public RunOptions Options { get; set; } = Unconfigured;

    /// <summary>
    /// The hypervisor, state directory and other settings of the manager that runs the VM; its
    /// <see cref="LinuxKitManagerOptions.Logger"/> defaults to the framework's diagnostic channel.
    /// Read when the VM starts.
    /// </summary>
    public LinuxKitManagerOptions ManagerOptions { get; set; } = UnconfiguredManager;

    private LinuxKitManager Manager => _manager ?? throw new InvalidOperationException("The VM is not started: StartAsync has not run or failed.");

    /// <summary>The running VM. Throws before <see cref="StartAsync"/> succeeded.</summary>
    public Container Container => _container ?? throw new InvalidOperationException("The VM is not started: StartAsync has not run or failed.");

    /// <summary>The host that reaches the VM's forwarded ports: always 127.0.0.1.</summary>
    public string Host { get; } = Loopback.Address;

    /// <summary>The host port of the VM's SSH server.</summary>
    public int SshPort => Container.SshPort;

    /// <summary>The SSH user.</summary>
    public string SshUser => Container.SshUser;

    /// <summary>The private key that logs in.</summary>
    public string SshKeyFile => Container.SshKeyFile;

    /// <summary>Forwarded ports: host port to guest port.</summary>
    public IReadOnlyDictionary<int, int> Ports => Container.Ports;

    /// <summary>The host port forwarded to <paramref name="guestPort"/>.</summary>
    public int HostPortFor(int guestPort) =>
        Ports.FirstOrDefault(p => p.Value == guestPort) is { Key: > 0 } mapping ? mapping.Key
            : throw new LinuxKitException($"VM {Container.Id} forwards no host port to guest port {guestPort}.");

    /// <summary>True when this fixture attached to a VM started elsewhere (it will not stop it).</summary>
    public bool Attached => _container is not null && !_booted;

    /// <summary>
    /// Fills in what configuration left unset: the image from a <see cref="LinuxKitImageAttribute"/>
    /// on the fixture's own class (a subclass, an NUnit fixture), else on the test assembly, else
    /// LINUXKIT_IMAGE; and the attribute's options unless <see cref="Options"/> (respectively
    /// <see cref="ManagerOptions"/>) was set.
    /// </summary>
    /// <exception cref="LinuxKitException">The attribute's ports or volumes are not written as documented.</exception>
    public void ApplyDefaults(Assembly? testAssembly)
    {
        _buildImage ??= new[] { testAssembly }.Concat(AppDomain.CurrentDomain.GetAssemblies())
            .SelectMany(a => a?.GetCustomAttributes<AssemblyMetadataAttribute>() ?? [])
            .FirstOrDefault(a => a.Key == BuildImageMetadata)?.Value;
        if (Image is not null) return;
        var attribute = GetType().GetCustomAttribute<LinuxKitImageAttribute>()
            ?? testAssembly?.GetCustomAttribute<LinuxKitImageAttribute>()
            ?? AppDomain.CurrentDomain.GetAssemblies()
                .Select(a => a.GetCustomAttribute<LinuxKitImageAttribute>())
                .FirstOrDefault(a => a is not null);
        if (attribute is not null)
        {
            Image = Resolve(attribute.Image, testAssembly);
            if (ReferenceEquals(Options, Unconfigured)) Options = attribute.ApplyTo(Options, path => Resolve(path, testAssembly));
            if (ReferenceEquals(ManagerOptions, UnconfiguredManager)) ManagerOptions = attribute.ApplyTo(ManagerOptions);
            return;
        }
        Image = LinuxKitEnvironment.Read(LinuxKitEnvironment.Image);
    }

    /// <summary>
    /// Sets <see cref="Image"/> and <see cref="Options"/> in a subclass, e.g.
    /// <c>Options = Options with { Memory = 512 };</c>. Runs at start, before the assembly's
    /// attribute and LINUXKIT_IMAGE are consulted.
    /// </summary>
    protected virtual void Configure() { }

    /// <summary>
    /// Configures (subclass, then the attribute of <paramref name="testAssembly"/> or of any
    /// loaded assembly, then LINUXKIT_IMAGE) and starts.
    /// </summary>
    public async Task ConfigureAndStartAsync(Assembly? testAssembly, CancellationToken cancellationToken = default)
    {
        Configure();
        ApplyDefaults(testAssembly ?? (GetType().Assembly == typeof(SharedVm).Assembly ? null : GetType().Assembly));
        await StartAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Boots the image, or attaches to the VM named by LINUXKIT_VM_ID.</summary>
    /// <exception cref="LinuxKitException">Nothing is configured, or the VM did not boot (the message carries the console tail).</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        var handOff = HandOff.Find();
        var managerOptions = handOff?.StateDirectory is { } folder ? ManagerOptions with { StateDirectory = folder } : ManagerOptions;
        _manager ??= new LinuxKitManager(managerOptions with { Logger = ManagerOptions.Logger ?? new DiagnosticLogger(_diagnostics) });
        if (handOff is not null)
        {
            if (await HandOff.ResolveAsync(Manager, handOff, cancellationToken).ConfigureAwait(false) is { } handed)
            {
                _diagnostics($"Using VM {handed.Id} started by the build ({handOff.Source})");
                _container = handed;
                return;
            }
            _diagnostics($"{handOff.Source} names VM {handOff.Vm}, which is not running (a file left by an earlier run): booting one.");
        }
        if (string.IsNullOrEmpty(Image) && !string.IsNullOrEmpty(_buildImage))
        {
            throw new LinuxKitException(
                $"The build was given LinuxKitImage '{_buildImage}', but no VM was handed off to these tests: the hand-off starts the VM when " +
                "`dotnet test` builds and runs this project (under VSTest before its tests; under Microsoft Testing Platform after the build, in " +
                "dotnet test's own process, so not with --no-build nor with several test projects built in worker nodes, see warning LKT011). " +
                "Tests run by an IDE or by the test executable itself get none. Run them with `dotnet test`, or give the fixture an image of its own: " +
                $"[assembly: LinuxKitImage(\"path/to/image\")], the fixture's Configure method, or {LinuxKitEnvironment.Image}.");
        }
        if (string.IsNullOrEmpty(Image))
        {
            throw new LinuxKitException(
                "No LinuxKit image is configured for the test fixture: add [assembly: LinuxKitImage(\"path/to/image\")], " +
                $"override the fixture's Configure method, or set {LinuxKitEnvironment.Image}.");
        }
        // The console also goes, line by line, to the running test's output (StreamConsoleTo),
        // and on to a stream the caller set.
        _console.Forward = Options.ConsoleOutput;
        _container = await Manager.RunAsync(Image, Options with { ConsoleOutput = _console }, cancellationToken).ConfigureAwait(false);
        _booted = true;
        foreach (var line in (await ReadConsoleAsync(cancellationToken).ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries))
            _diagnostics($"[{_container.Id} console] {line.TrimEnd('\r')}");
    }

    /// <summary>Runs a command in the VM; each argument reaches the program as given.</summary>
    public Task<ExecResult> ExecAsync(IReadOnlyList<string> command, CancellationToken cancellationToken = default) =>
        Manager.ExecAsync(Container.Id, command, cancellationToken);

    /// <summary>Runs a command in the VM.</summary>
    public Task<ExecResult> ExecAsync(params string[] command) => ExecAsync((IReadOnlyList<string>)command);

    /// <summary>Everything the VM wrote to its serial console so far.</summary>
    public async Task<string> ReadConsoleAsync(CancellationToken cancellationToken = default)
    {
        var stream = await Manager.LogsAsync(Container.Id, follow: false, cancellationToken).ConfigureAwait(false);
        await using var streamDisposal = stream.ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// From now on, copies each line the VM writes to its serial console to
    /// <paramref name="writeLine"/>, until the next call replaces it (null stops): call it where
    /// a test starts, with the test's output, and the console written while the test ran is
    /// beside its result (runners show it for failed tests). The first call also writes how the
    /// VM was started (the boot's progress and console), which runners that show no diagnostic
    /// messages would otherwise hide. Writes that fail (the test has ended) are dropped. Only
    /// for a VM this fixture booted; one handed off by a build step is read with
    /// <see cref="ReadConsoleSinceAsync"/>.
    /// </summary>
    /// <param name="writeLine">The running test's output, e.g. xUnit's <c>ITestOutputHelper.WriteLine</c>.</param>
    public void StreamConsoleTo(Action<string>? writeLine)
    {
        if (writeLine is not null && WriteHowItStartedOnce(writeLine)) writeLine("--- the VM's console during this test ---");
        _console.Sink = writeLine;
    }

    /// <summary>
    /// Writes how the VM was started (the boot's progress and console, as the diagnostic channel
    /// got them) to <paramref name="writeLine"/>, the first time only: for the first test's
    /// output, where runners that show no diagnostic messages (Microsoft Testing Platform) still
    /// show it.
    /// </summary>
    /// <returns>Whether anything was written.</returns>
    protected bool WriteHowItStartedOnce(Action<string> writeLine)
    {
        ArgumentNullException.ThrowIfNull(writeLine);
        string[] boot;
        lock (_bootLog)
        {
            boot = _bootLogShown ? [] : [.. _bootLog];
            _bootLogShown = true;
        }
        if (boot.Length == 0) return false;
        writeLine("--- LinuxKit.Testing: how the VM was started ---");
        foreach (var line in boot) writeLine(line);
        return true;
    }

    /// <summary>
    /// The console lines the VM wrote since <paramref name="since"/>, each with the time it
    /// appeared, as one text (empty when there were none): for a test's output after it failed.
    /// </summary>
    public async Task<string> ReadConsoleSinceAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        var lines = await Manager.ReadConsoleAsync(Container.Id, since, until: null, cancellationToken).ConfigureAwait(false);
        var text = new StringBuilder();
        foreach (var line in lines) text.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{line.Time:HH:mm:ss.fff}] {line.Text}").Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// What a failed test's output gets: the console lines since <paramref name="since"/> under a
    /// line naming the VM; null when there is no VM (its boot failed, and the failure says so) or
    /// its console is gone.
    /// </summary>
    public async Task<string?> ConsoleReportSinceAsync(DateTimeOffset since, CancellationToken cancellationToken = default)
    {
        if (_container is null || _manager is null) return null;
        string console;
        try
        {
            console = await ReadConsoleSinceAsync(since, cancellationToken).ConfigureAwait(false);
        }
        catch (LinuxKitException)
        {
            return null;
        }
        return $"--- VM {_container.Id}: serial console while the test ran ({(console.Length == 0 ? "nothing" : "below")}) ---\n{console}";
    }

    /// <summary>Stops the VM if this fixture booted it; a VM it attached to keeps running.</summary>
    public virtual async ValueTask DisposeAsync()
    {
        if (_disposed) return; // frameworks may end a fixture twice (tear-down, then Dispose)
        _disposed = true;
        if (_booted && _container is not null)
        {
            _diagnostics($"Stopping VM {_container.Id}");
            await Manager.StopAsync(_container.Id).ConfigureAwait(false);
        }
        if (_manager is not null) await _manager.DisposeAsync().ConfigureAwait(false);
        GC.SuppressFinalize(this);
    }

    private static string Resolve(string image, Assembly? testAssembly)
    {
        if (Path.IsPathRooted(image) || testAssembly is null) return image;
        var besideAssembly = Path.Combine(Path.GetDirectoryName(testAssembly.Location) ?? "", image);
        return File.Exists(besideAssembly) || File.Exists(besideAssembly + "-kernel") ? besideAssembly : image;
    }

    private sealed class DiagnosticLogger(Action<string> write) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) write(formatter(state, exception));
        }
    }
}
