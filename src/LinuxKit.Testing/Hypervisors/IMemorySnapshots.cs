namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// What a hypervisor needs for warm start: save a running VM whose RAM is a file (see
/// <see cref="VmSpec.MemoryFile"/>), and start another from that file and the saved state.
/// QEMU has it; a hypervisor without it boots every VM cold.
/// </summary>
internal interface IMemorySnapshots
{
    /// <summary>The hypervisor binary that runs guests of <paramref name="architecture"/>: part of what a template is made by.</summary>
    string BinaryFor(GuestArchitecture architecture);

    /// <summary>
    /// What a template made with this hypervisor depends on besides the image and the binary:
    /// the accelerator, and the command line the SDK builds for <paramref name="canonical"/> (so
    /// a change of devices counts).
    /// </summary>
    Task<string> IdentityAsync(VmSpec canonical, CancellationToken cancellationToken);

    /// <summary>
    /// Freezes the VM and writes its device state to <paramref name="stateFile"/>; its RAM is
    /// already in its memory file. The VM stays frozen: the caller ends it.
    /// </summary>
    Task SaveAsync(string controlSocket, string stateFile, CancellationToken cancellationToken);

    /// <summary>
    /// Loads <paramref name="stateFile"/> into a VM started with <see cref="VmSpec.Incoming"/>
    /// and lets it run. Fails as soon as the VM dies (<paramref name="exited"/>) or the load fails.
    /// </summary>
    Task RestoreAsync(string controlSocket, string stateFile, Func<bool> exited, CancellationToken cancellationToken);

    /// <summary>A clone's own disk: a qcow2 overlay over the template's disk, in the clone's folder.</summary>
    Task CreateOverlayAsync(string templateDisk, string overlay, CancellationToken cancellationToken);
}
