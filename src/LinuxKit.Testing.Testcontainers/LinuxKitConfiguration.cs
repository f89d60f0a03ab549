using DotNet.Testcontainers.Configurations;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// Everything a <see cref="LinuxKitBuilder"/> collected. Immutable: each builder method returns
/// a builder over a changed copy, so a builder can be shared and branched. The VM's settings are
/// the core's own <see cref="RunOptions"/> and <see cref="LinuxKitManagerOptions"/>, with their
/// defaults and their validation.
/// </summary>
public sealed record LinuxKitConfiguration
{
    /// <summary>The LinuxKit image: a file (ISO, qcow2, VMDK, raw) or a kernel+initrd prefix.</summary>
    public string? Image { get; init; }

    /// <summary>How to run the VM: name, memory, CPUs, ports, volumes, SSH key and user, boot timeout, stop mode.</summary>
    public RunOptions Options { get; init; } = new();

    /// <summary>The manager's settings: hypervisor, state directory, logger.</summary>
    public LinuxKitManagerOptions ManagerOptions { get; init; } = new();

    /// <summary>The wait strategies, run in order after the VM answers over SSH.</summary>
    public IReadOnlyList<IWaitForContainerOS> WaitStrategies { get; init; } = [];

    /// <summary>Receives the serial console as it is written (on its stdout stream).</summary>
    public IOutputConsumer? OutputConsumer { get; init; }

    /// <summary>
    /// How long <c>StartAsync</c> may take in all: boot to SSH (itself bounded by
    /// <see cref="RunOptions.BootTimeout"/>) and every wait strategy.
    /// </summary>
    public TimeSpan StartupTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
