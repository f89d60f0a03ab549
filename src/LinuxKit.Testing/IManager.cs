namespace LinuxKit.Testing;

/// <summary>Runs LinuxKit VMs: the original design's Manager, in .NET form.</summary>
public interface IManager
{
    /// <summary>Boots <paramref name="image"/> and returns once the VM ran a command over SSH.</summary>
    /// <param name="image">An image file (ISO, qcow2, VMDK, raw) or a kernel+initrd prefix.</param>
    /// <param name="options">How to run it.</param>
    /// <param name="cancellationToken">Cancels the boot; the VM is then stopped.</param>
    Task<Container> RunAsync(string image, RunOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stops a VM the way its <see cref="RunOptions.StopMode"/> says (by default at once) and
    /// removes its runtime files.
    /// </summary>
    Task StopAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Every VM in the state directory; VMs whose hypervisor died show as stopped.</summary>
    Task<IReadOnlyList<Container>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// The VM's serial console. With <paramref name="follow"/> the stream waits for new output
    /// and ends when the VM stops or <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    Task<Stream> LogsAsync(string id, bool follow, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs a command in the VM over SSH; each argument reaches the program as given. Cancelling
    /// returns at once; the command itself is not killed but runs to its end in the guest.
    /// </summary>
    Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken cancellationToken = default);
}
