using LinuxKit.Testing.Hypervisors;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing;

/// <summary>Settings shared by every VM a <see cref="LinuxKitManager"/> runs.</summary>
public sealed record LinuxKitManagerOptions
{
    /// <summary>
    /// Where VM records, console logs, keys and overlays live. Default: the environment variable
    /// LINUXKIT_TESTING_HOME, else a per-user state folder (~/.local/state/linuxkit-testing on
    /// Linux, ~/Library/Application Support/LinuxKit.Testing on macOS). Processes that share
    /// it see each other's VMs.
    /// </summary>
    public string? StateDirectory { get; init; }

    /// <summary>
    /// Which hypervisor to use (default: LINUXKIT_TESTING_HYPERVISOR=qemu|hyperkit|kubevirt, else detect:
    /// Hyperkit on an Intel Mac that has it on PATH, QEMU everywhere else).
    /// </summary>
    public HypervisorKind Hypervisor { get; init; } = HypervisorKind.Auto;

    /// <summary>QEMU's accelerator (default: detect; LINUXKIT_TESTING_ACCEL overrides detection).</summary>
    public Accelerator Accelerator { get; init; } = Accelerator.Auto;

    /// <summary>The qemu-system-x86_64 binary (default: LINUXKIT_TESTING_QEMU, else from PATH).</summary>
    public string? QemuPath { get; init; }

    /// <summary>Settings for the Hyperkit backend (binary, EFI firmware, networking).</summary>
    public HyperkitOptions Hyperkit { get; init; } = new();

    /// <summary>Settings for the KubeVirt backend (cluster, namespace, time limits).</summary>
    public KubeVirtOptions KubeVirt { get; init; } = new();

    /// <summary>How long a guest may take to power off after the ACPI request before it is terminated (default 10 s).</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The default of <see cref="OutputLimit"/>: 64 MiB.</summary>
    public const long DefaultOutputLimit = 64L * 1024 * 1024;

    /// <summary>
    /// The most bytes taken of a command's standard output, of its standard error, and of a file
    /// read back from a guest (default 64 MiB); more is a <see cref="LinuxKitException"/> that
    /// names the limit, so a runaway command cannot exhaust the test host's memory.
    /// </summary>
    public long OutputLimit { get; init; } = DefaultOutputLimit;

    /// <summary>
    /// The most bytes a VM's console log may hold on disk (default 64 MiB): past it, the SDK
    /// moves it to <c>console.log.1</c> and starts it again, whenever it watches or looks at the
    /// VM (while the VM's owner runs, and at each list or inspect).
    /// </summary>
    public long ConsoleLogLimit { get; init; } = DefaultOutputLimit;

    /// <summary>The default of <see cref="TemplateCacheLimit"/>: 8 GiB.</summary>
    public const long DefaultTemplateCacheLimit = 8L * 1024 * 1024 * 1024;

    /// <summary>
    /// The most disk space the warm-start templates of the state directory may take (default
    /// 8 GiB): when a template is made, the least recently used others are removed until the
    /// rest fit (never the one just made).
    /// </summary>
    public long TemplateCacheLimit { get; init; } = DefaultTemplateCacheLimit;

    /// <summary>Where the manager logs what it does (boot progress, warnings).</summary>
    public ILogger? Logger { get; init; }

    internal string ResolveStateDirectory()
    {
        if (!string.IsNullOrEmpty(StateDirectory)) return StateDirectory;
        if (LinuxKitEnvironment.Read(LinuxKitEnvironment.StateDirectory) is { } fromEnvironment) return fromEnvironment;
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (OperatingSystem.IsMacOS()) return Path.Combine(home, "Library", "Application Support", "LinuxKit.Testing");
        var stateHome = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        return Path.Combine(string.IsNullOrEmpty(stateHome) ? Path.Combine(home, ".local", "state") : stateHome, "linuxkit-testing");
    }
}
