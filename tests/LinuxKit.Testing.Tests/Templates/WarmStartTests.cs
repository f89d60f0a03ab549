using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Lifecycle;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Tests.Templates;

/// <summary>
/// Warm start's policy (when it is not tried) and its make path's failures over fake
/// hypervisors: whether a VM boots cold, fails, or leaves anything behind. Restores from a made
/// template need a guest answering over SSH: the integration tests run those.
/// </summary>
public sealed class WarmStartTests : IAsyncDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("lkt-warm-").FullName;
    private readonly StateStore _store;
    private readonly VmRuntime _runtime = new(new SshSessionPool(TimeProvider.System, 1024 * 1024));
    private readonly TemplateStore _templates;
    private readonly WarmStart _warmStart;
    private readonly Notes _log = new();
    private readonly LinuxKitImage _image;

    public WarmStartTests()
    {
        _store = new StateStore(Path.Combine(_root, "state"));
        var ports = new PortAllocator(_store.Scratch("ports"));
        var launcher = new VmLauncher(ports, new VmRegistry(_store, _runtime, TimeProvider.System, 1024 * 1024), _runtime, TimeProvider.System);
        _templates = new TemplateStore(_store.Scratch("templates"));
        _warmStart = new WarmStart(launcher, _templates, ports, TimeProvider.System, _log, TimeSpan.FromSeconds(3), long.MaxValue);
        foreach (var file in new[] { "os-kernel", "os-initrd.img", "qemu" }) File.WriteAllText(Path.Combine(_root, file), file);
        _image = new LinuxKitImage { Format = ImageFormat.KernelInitrd, Path = Path.Combine(_root, "os-kernel"), Initrd = Path.Combine(_root, "os-initrd.img"), CommandLine = "console=ttyS0" };
    }

    public async ValueTask DisposeAsync()
    {
        await _runtime.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private BootAttempt Boot()
    {
        var files = _store.Files(_store.NewId());
        PrivateFiles.CreateFolder(files.Directory);
        return new BootAttempt(
            new VmRecord
            {
                Id = files.Id, Image = _image.Path, Format = _image.Format, Hypervisor = HypervisorKind.Qemu, Status = ContainerStatus.Starting,
                SshUser = "root", SshKeyFile = files.SshKey, Files = files,
            },
            $"VM {files.Id}");
    }

    private static readonly RunOptions Options = new() { Memory = 256 };

    public static TheoryData<string> WhyCold => ["warm start off for the VM", "a hypervisor that cannot save a VM", "volumes"];

    [Theory]
    [MemberData(nameof(WhyCold))]
    public async Task A_vm_for_which_warm_start_is_off_or_impossible_boots_cold_and_nothing_is_started(string why)
    {
        var snapshots = new SnapshottingHypervisor(Path.Combine(_root, "qemu"));
        (IHypervisor hypervisor, RunOptions options) = why switch
        {
            "warm start off for the VM" => ((IHypervisor)snapshots, Options with { WarmStart = false }),
            "a hypervisor that cannot save a VM" => (new PlainHypervisor(), Options),
            _ => (snapshots, Options with { Volumes = new Dictionary<string, string> { [_root] = "/mnt" } }),
        };

        var ready = await _warmStart.TryRestoreAsync(Boot(), _image, options, hypervisor, "ssh-ed25519 AAAA k", CancellationToken.None);

        Assert.Null(ready);
        Assert.Equal(0, snapshots.Starts);
        Assert.Empty(Directory.GetFileSystemEntries(_templates.Root));
    }

    [Fact]
    public async Task A_key_remembered_as_failed_boots_cold_at_once_saying_how_to_try_again()
    {
        var hypervisor = new SnapshottingHypervisor(Path.Combine(_root, "qemu"));
        var inputs = TemplateKey.Inputs(_image).Append(TemplateKey.Fingerprint(hypervisor.Binary)).ToList();
        var key = TemplateKey.Compute(inputs, _image, Options, "own", SnapshottingHypervisor.Identity);
        _templates.MarkFailed(new TemplateFailure { Key = key, Image = _image.Path, Memory = 256, Cpus = 1, Reason = "the guest refused its first clone", FailedAt = DateTimeOffset.UtcNow });

        var ready = await _warmStart.TryRestoreAsync(Boot(), _image, Options, hypervisor, "ssh-ed25519 AAAA k", CancellationToken.None);

        Assert.Null(ready);
        Assert.Equal(0, hypervisor.Starts);
        var note = Assert.Single(_log.Lines);
        Assert.Contains("the guest refused its first clone", note, StringComparison.Ordinal);
        Assert.Contains($"linuxkit-testing templates rm {key}", note, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_template_whose_hypervisor_cannot_start_means_a_cold_boot_leaving_no_staging_folder_and_no_verdict()
    {
        var hypervisor = new SnapshottingHypervisor(Path.Combine(_root, "qemu")) { StartFailure = new LinuxKitException("QEMU refused the memory file") };

        var ready = await _warmStart.TryRestoreAsync(Boot(), _image, Options, hypervisor, "ssh-ed25519 AAAA k", CancellationToken.None);

        Assert.Null(ready);
        Assert.Equal(1, hypervisor.Starts);
        Assert.Contains(_log.Lines, l => l.Contains("boots cold", StringComparison.Ordinal) && l.Contains("QEMU refused the memory file", StringComparison.Ordinal));
        // Nothing was learnt about the guest: the next VM tries again.
        Assert.DoesNotContain(Directory.GetFileSystemEntries(_templates.Root), e => !e.EndsWith(".lock", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_template_boot_that_fails_as_a_cold_boot_would_fails_the_vm()
    {
        var hypervisor = new SnapshottingHypervisor(Path.Combine(_root, "qemu")) { StartFailure = new LinuxKitBootException("the hypervisor exited", "Kernel panic") };

        await Assert.ThrowsAsync<LinuxKitBootException>(() => _warmStart.TryRestoreAsync(Boot(), _image, Options, hypervisor, "ssh-ed25519 AAAA k", CancellationToken.None));

        Assert.Empty(_templates.Failures());
        Assert.Empty(Directory.GetDirectories(_templates.Root));
    }

    private class PlainHypervisor : IHypervisor
    {
        public int Starts { get; private set; }

        public Exception? StartFailure { get; init; }

        public HypervisorKind Kind => HypervisorKind.Qemu;

        public void Validate(LinuxKitImage image, RunOptions options)
        {
        }

        public Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

        public Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken)
        {
            Starts++;
            throw StartFailure ?? new InvalidOperationException("this fake starts nothing");
        }

        public Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken) => Task.FromResult(137);

        public Task PauseAsync(string controlSocket, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task ResumeAsync(string controlSocket, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class SnapshottingHypervisor(string binary) : PlainHypervisor, IMemorySnapshots
    {
        public const string Identity = "fake 1.0, cpu fake";

        public string Binary => binary;

        public string BinaryFor(GuestArchitecture architecture) => binary;

        public Task<string> IdentityAsync(VmSpec canonical, CancellationToken cancellationToken) => Task.FromResult(Identity);

        public Task SaveAsync(string controlSocket, string stateFile, CancellationToken cancellationToken) => throw new InvalidOperationException("nothing runs to save");

        public Task RestoreAsync(string controlSocket, string stateFile, Func<bool> exited, CancellationToken cancellationToken) => throw new InvalidOperationException("nothing runs to restore");

        public Task CreateOverlayAsync(string templateDisk, string overlay, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class Notes : ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning || formatter(state, exception).Contains("boots cold", StringComparison.Ordinal))
                lock (Lines) Lines.Add(formatter(state, exception));
        }
    }
}
