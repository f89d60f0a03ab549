using System.Runtime.InteropServices;
using LinuxKit.Testing.Hypervisors.Hyperkit;
using LinuxKit.Testing.Hypervisors.Qemu;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// Picks the hypervisor the options, the environment and the host call for (see
/// <see cref="HypervisorSelection"/>) and builds it: the one place a manager's backend comes from.
/// </summary>
internal static class HypervisorFactory
{
    public static IHypervisor Create(LinuxKitManagerOptions options, ILogger logger)
    {
        var requested = options.Hypervisor;
        if (requested == HypervisorKind.Auto && LinuxKitEnvironment.Read<HypervisorKind>(LinuxKitEnvironment.Hypervisor) is { } fromEnvironment)
            requested = fromEnvironment;
        var (kind, message) = HypervisorSelection.Choose(
            requested, OperatingSystem.IsMacOS(), RuntimeInformation.OSArchitecture, () => HyperkitHypervisor.Locate(options.Hyperkit) is not null);
        if (message is not null) logger.LogInformation("{Reason}", message);
        return kind switch
        {
            HypervisorKind.Hyperkit => new HyperkitHypervisor(options.Hyperkit, logger),
            _ => new QemuHypervisor(options.QemuPath, options.Accelerator, logger),
        };
    }
}
