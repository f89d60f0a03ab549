using System.Runtime.InteropServices;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>Which hypervisor runs the VMs, and why: pure, so every case is unit-tested.</summary>
internal static class HypervisorSelection
{
    /// <param name="requested">The choice in the options; anything but Auto wins.</param>
    /// <param name="isMacOS">Whether this is macOS.</param>
    /// <param name="architecture">The host's architecture.</param>
    /// <param name="hyperkitOnPath">Whether a hyperkit binary is there; asked only on an Intel Mac left to detection.</param>
    /// <returns>The hypervisor and, when the choice may surprise, a message saying why.</returns>
    public static (HypervisorKind Kind, string? Message) Choose(HypervisorKind requested, bool isMacOS, Architecture architecture, Func<bool> hyperkitOnPath)
    {
        if (requested != HypervisorKind.Auto) return (requested, null);
        if (!isMacOS) return (HypervisorKind.Qemu, null);
        if (architecture == Architecture.Arm64)
            return (HypervisorKind.Qemu, "Apple Silicon: hyperkit does not run here, so VMs run under QEMU with hvf.");
        return hyperkitOnPath()
            ? (HypervisorKind.Hyperkit, null)
            : (HypervisorKind.Qemu, "hyperkit is not on PATH, so VMs run under QEMU with hvf (install hyperkit, or set LinuxKitManagerOptions.Hypervisor).");
    }
}
