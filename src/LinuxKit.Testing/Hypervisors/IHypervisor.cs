using LinuxKit.Testing.Images;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// The process-control side of a hypervisor. The manager drives VMs only through this, so a
/// second backend (Hyperkit) plugs in without touching the manager.
/// </summary>
internal interface IHypervisor
{
    HypervisorKind Kind { get; }

    /// <summary>
    /// Refuses, with the reason and what to do, a VM this hypervisor cannot run. Called before
    /// anything is allocated (no folder, no port, no disk copy).
    /// </summary>
    /// <exception cref="LinuxKitException">The image or an option cannot be used here.</exception>
    void Validate(LinuxKitImage image, RunOptions options);

    /// <summary>
    /// Makes the disk the VM boots from, inside the VM's folder, so the user's image is never
    /// written; null for formats that boot without one (ISO, kernel+initrd).
    /// </summary>
    Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken);

    /// <summary>
    /// Whether it can load the kernel found in an ISO or disk itself (<see cref="DirectKernel"/>);
    /// where it cannot, such images always boot through its firmware.
    /// </summary>
    bool LoadsKernelsFromImages => false;

    /// <summary>How long the VM's process has from SIGTERM to SIGKILL when its owner dies: what it does then must fit.</summary>
    TimeSpan TerminationGrace => TimeSpan.FromSeconds(5);

    /// <summary>Starts the VM and returns its process once the hypervisor runs (the guest is still booting).</summary>
    Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken);

    /// <summary>
    /// Ends the VM, the whole escalation (see <see cref="StopEscalation"/>): <see cref="StopMode.Fast"/>
    /// ends it at once, <see cref="StopMode.Graceful"/> asks the guest to power off and waits up to
    /// <paramref name="gracePeriod"/>. Returns the exit code: 0 after a power-off, 128 + the signal
    /// otherwise (137 for a fast stop).
    /// </summary>
    Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken);

    /// <summary>Freezes the guest's CPUs.</summary>
    Task PauseAsync(string controlSocket, CancellationToken cancellationToken);

    /// <summary>Lets a paused guest run again.</summary>
    Task ResumeAsync(string controlSocket, CancellationToken cancellationToken);
}
