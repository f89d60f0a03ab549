namespace LinuxKit.Testing;

/// <summary>How a VM is stopped.</summary>
public enum StopMode
{
    /// <summary>
    /// At once (QEMU's <c>quit</c>, then signals): the VM's disk is a throwaway overlay, so it has
    /// nothing to lose; with volumes mounted, <c>sync</c> runs in the guest first (at most 2 s).
    /// The exit code is 137, as for a killed container.
    /// </summary>
    Fast,

    /// <summary>
    /// An ACPI power-off request, then SIGTERM and SIGKILL if the guest has not powered off within
    /// <see cref="LinuxKitManagerOptions.StopTimeout"/> (images without an ACPI handler never do).
    /// The exit code is 0 after a power-off, 143 or 137 when it had to be terminated or killed.
    /// </summary>
    Graceful,
}
