using System.Runtime.InteropServices;
using LinuxKit.Testing.Hypervisors.Hyperkit;
using LinuxKit.Testing.Hypervisors.KubeVirt;
using LinuxKit.Testing.Hypervisors.Qemu;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// Picks the hypervisor the options, the environment and the host call for (see
/// <see cref="HypervisorSelection"/>) and builds it: the one place a manager's backend comes from.
/// </summary>
internal static class HypervisorFactory
{
    /// <param name="options">The manager's options.</param>
    /// <param name="scratch">Makes (on first use) a private folder of the state directory, by name, that a backend may keep files in.</param>
    /// <param name="logger">Where the choice and the backend's work are logged.</param>
    public static IHypervisor Create(LinuxKitManagerOptions options, Func<string, string> scratch, ILogger logger)
    {
        var requested = Requested(options);
        if (requested == HypervisorKind.KubeVirt) return new KubeVirtHypervisor(options.KubeVirt, () => scratch("kubevirt"), logger);
        var (kind, message) = HypervisorSelection.Choose(
            requested, OperatingSystem.IsMacOS(), RuntimeInformation.OSArchitecture, () => HyperkitHypervisor.Locate(options.Hyperkit) is not null);
        if (message is not null) logger.LogInformation("{Reason}", message);
        return kind switch
        {
            HypervisorKind.Hyperkit => new HyperkitHypervisor(options.Hyperkit, logger),
            _ => new QemuHypervisor(options.QemuPath, options.Accelerator, logger, () => scratch("host")),
        };
    }

    /// <summary>Whether VMs of <paramref name="kind"/> hold resources outside this host (<see cref="IRemoteResources"/>).</summary>
    public static bool KeepsRemoteResources(HypervisorKind kind) => kind == HypervisorKind.KubeVirt;

    /// <summary>The hypervisor the options ask for, else the environment (LINUXKIT_TESTING_HYPERVISOR), else Auto.</summary>
    public static HypervisorKind Requested(LinuxKitManagerOptions options) =>
        options.Hypervisor == HypervisorKind.Auto && LinuxKitEnvironment.Read<HypervisorKind>(LinuxKitEnvironment.Hypervisor) is { } fromEnvironment
            ? fromEnvironment
            : options.Hypervisor;
}
