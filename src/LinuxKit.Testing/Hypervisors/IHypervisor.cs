using LinuxKit.Testing.Images;
using LinuxKit.Testing.Processes;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// The process-control side of a hypervisor. The manager drives VMs only through this, so a
/// second backend (Hyperkit) plugs in without touching the manager.
/// </summary>
internal interface IHypervisor
{
    HypervisorKind Kind { get; }

    /// <summary>
    /// Makes the disk the VM boots from, inside the VM's folder, so the user's image is never
    /// written; null for formats that boot without one (ISO, kernel+initrd).
    /// </summary>
    Task<string?> PrepareBootDiskAsync(LinuxKitImage image, string vmDirectory, CancellationToken cancellationToken);

    /// <summary>Starts the VM and returns its process once the hypervisor runs (the guest is still booting).</summary>
    Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken);

    /// <summary>Asks the guest to power off (ACPI power button); false when the request could not be sent.</summary>
    Task<bool> RequestPowerOffAsync(string controlSocket, ProcessIdentity process, CancellationToken cancellationToken);

    /// <summary>Freezes the guest's CPUs.</summary>
    Task PauseAsync(string controlSocket, CancellationToken cancellationToken);

    /// <summary>Lets a paused guest run again.</summary>
    Task ResumeAsync(string controlSocket, CancellationToken cancellationToken);
}
