using DotNet.Testcontainers.Configurations;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// Everything a <see cref="LinuxKitBuilder"/> collected. Immutable: each builder method returns
/// a builder over a changed copy, so a builder can be shared and branched.
/// </summary>
public sealed record LinuxKitConfiguration
{
    /// <summary>The LinuxKit image: a file (ISO, qcow2, VMDK, raw) or a kernel+initrd prefix.</summary>
    public string? Image { get; init; }

    /// <summary>The VM's name; null lets the manager pick none (the id identifies it).</summary>
    public string? Name { get; init; }

    /// <summary>Memory in MB.</summary>
    public int Memory { get; init; } = 1024;

    /// <summary>Virtual CPUs.</summary>
    public int Cpus { get; init; } = 1;

    /// <summary>Guest TCP ports published on 127.0.0.1; host port 0 picks a free one at start.</summary>
    public IReadOnlyList<PortMapping> PortBindings { get; init; } = [];

    /// <summary>Host folders shared with the guest.</summary>
    public IReadOnlyList<BindMount> BindMounts { get; init; } = [];

    /// <summary>A private key the image accepts; null makes a fresh key per VM.</summary>
    public string? SshKey { get; init; }

    /// <summary>The wait strategies, run in order after the VM answers over SSH.</summary>
    public IReadOnlyList<IWaitForContainerOS> WaitStrategies { get; init; } = [];

    /// <summary>Where progress and diagnostics go.</summary>
    public ILogger? Logger { get; init; }

    /// <summary>Receives the serial console as it is written (on its stdout stream).</summary>
    public IOutputConsumer? OutputConsumer { get; init; }

    /// <summary>How long <c>StartAsync</c> may take in all: boot to SSH and every wait strategy.</summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How <c>StopAsync</c> and disposal end the VM: at once (the default) or after a power-off request.</summary>
    public StopMode StopMode { get; init; } = StopMode.Fast;

    /// <summary>The state directory; null uses LINUXKIT_TESTING_HOME or the default.</summary>
    public string? StateDirectory { get; init; }
}
