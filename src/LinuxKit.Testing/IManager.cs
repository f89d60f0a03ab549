using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing;

/// <summary>
/// Runs LinuxKit VMs: the original design's Manager, in .NET form. Every operation of
/// <see cref="LinuxKitManager"/> is here, so code that uses VMs can take this interface and its
/// tests can give a fake. Disposing stops the VMs this manager started that are not detached.
/// </summary>
public interface IManager : IAsyncDisposable
{
    /// <summary>The state directory: where VM records, console logs, keys and overlays live.</summary>
    string StateDirectory { get; }

    /// <summary>Boots <paramref name="image"/> and returns once the VM ran a command over SSH.</summary>
    /// <param name="image">An image file (ISO, qcow2, VMDK, raw) or a kernel+initrd prefix.</param>
    /// <param name="options">How to run it.</param>
    /// <param name="cancellationToken">Cancels the boot; the VM is then stopped.</param>
    /// <exception cref="LinuxKitBootException">The VM did not answer over SSH (the message says why, with the console's last lines).</exception>
    /// <exception cref="LinuxKitException">The image or an option is refused, or a port is taken.</exception>
    Task<Container> RunAsync(string image, RunOptions options, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stops a VM the way its <see cref="RunOptions.StopMode"/> says (by default at once) and
    /// removes its runtime files.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="cancellationToken">Cancels the waits; signals already sent stay sent.</param>
    Task StopAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Stops a VM as <paramref name="mode"/> says, whatever its <see cref="RunOptions.StopMode"/>, and removes its runtime files.</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="mode">At once, or after a power-off request.</param>
    /// <param name="cancellationToken">Cancels the waits; signals already sent stay sent.</param>
    Task StopAsync(string id, StopMode mode, CancellationToken cancellationToken = default);

    /// <summary>Every VM in the state directory; VMs whose hypervisor died show as stopped.</summary>
    /// <param name="cancellationToken">Cancels the wait for the state directory's lock.</param>
    Task<IReadOnlyList<Container>> ListAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// The VM's current status, checked against its hypervisor process (a VM whose hypervisor
    /// exited is <see cref="ContainerStatus.Stopped"/>).
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    Task<Container> InspectAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// The VM's serial console. With <paramref name="follow"/> the stream waits for new output
    /// and ends when the VM stops or <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="follow">True to wait for new output, like <c>tail -f</c>.</param>
    /// <param name="cancellationToken">Ends a followed stream.</param>
    Task<Stream> LogsAsync(string id, bool follow, CancellationToken cancellationToken = default);

    /// <summary>
    /// The console's lines written from <paramref name="since"/> up to <paramref name="until"/>,
    /// each with its time. A serial console has no timestamps, so a line's time is when this
    /// manager saw it in the console log: within 0.1 s of the guest writing it for VMs this
    /// manager booted, the time of this call for older lines of other VMs.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="since">The earliest line to return; null from the first.</param>
    /// <param name="until">The latest line to return; null to the last.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    Task<IReadOnlyList<ConsoleLine>> ReadConsoleAsync(string id, DateTimeOffset? since = null, DateTimeOffset? until = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs a command in the VM over SSH; each argument reaches the program as given. Cancelling
    /// returns at once; the command itself is not killed but runs to its end in the guest.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="command">The program and its arguments.</param>
    /// <param name="cancellationToken">Stops waiting for the command.</param>
    /// <exception cref="LinuxKitException">The VM is not running, or SSH cannot reach it.</exception>
    Task<ExecResult> ExecAsync(string id, IReadOnlyList<string> command, CancellationToken cancellationToken = default);

    /// <summary>
    /// Writes a file in the VM (over the SSH connection, with nothing but a POSIX shell needed in
    /// the guest). The file appears whole or not at all; missing parent folders are created.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="guestPath">The absolute path in the guest.</param>
    /// <param name="content">What to write; read to its end.</param>
    /// <param name="mode">The file's permissions.</param>
    /// <param name="ownerId">The owning user id.</param>
    /// <param name="groupId">The owning group id.</param>
    /// <param name="cancellationToken">Cancels the copy.</param>
    /// <exception cref="LinuxKitException">The guest refused the file (read-only file system, full disk, ...).</exception>
    Task WriteFileAsync(string id, string guestPath, Stream content, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default);

    /// <summary>Reads a file from the VM (over the SSH connection; no SFTP server needed).</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="guestPath">The absolute path in the guest.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    /// <exception cref="LinuxKitException">The path is a folder, a device, pipe or socket, or cannot be read.</exception>
    Task<byte[]> ReadFileAsync(string id, string guestPath, CancellationToken cancellationToken = default);

    /// <summary>Freezes a running VM's CPUs.</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    Task PauseAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>Lets a paused VM run again.</summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    Task ResumeAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes a VM that does not run, with its folder (console log included); a record that
    /// could not be trusted (<see cref="Container.Error"/>) is removed as by a stop.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <exception cref="LinuxKitException">There is no such VM, it runs (stop it first), or it was started on another machine or PID namespace (<see cref="Container.ForeignHost"/>).</exception>
    Task RemoveAsync(string id, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="RemoveAsync(string, CancellationToken)"/>; with <paramref name="force"/>, also
    /// forgets a VM started on another machine or in another PID namespace
    /// (<see cref="Container.ForeignHost"/>): its folder is removed, nothing is signalled, and the
    /// VM, if it still runs there, runs on untracked.
    /// </summary>
    /// <param name="id">The VM's id or name.</param>
    /// <param name="force">Remove a VM recorded elsewhere too.</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <exception cref="LinuxKitException">There is no such VM, it runs here (stop it first), or it runs elsewhere without <paramref name="force"/>.</exception>
    Task RemoveAsync(string id, bool force, CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes what nothing will use again: stopped and failed VMs' folders, VMs whose owner
    /// died (stopped first, if their watchdog did not), and warm-start templates whose image or
    /// QEMU changed or that were not used for 14 days.
    /// </summary>
    /// <param name="dryRun">True to only say what would be removed.</param>
    /// <param name="cancellationToken">Cancels the pruning (what was removed stays removed).</param>
    /// <returns>What was removed, or with <paramref name="dryRun"/> what would be.</returns>
    Task<PruneResult> PruneAsync(bool dryRun = false, CancellationToken cancellationToken = default);

    /// <summary>The warm-start templates in the state directory, with their size on disk.</summary>
    /// <param name="cancellationToken">Cancels the listing.</param>
    Task<IReadOnlyList<WarmStartTemplate>> ListTemplatesAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Removes a warm-start template (the next VM of its image and options makes a new one).
    /// VMs restored from it run on.
    /// </summary>
    /// <param name="key">The template's key (<see cref="WarmStartTemplate.Key"/>).</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <exception cref="LinuxKitException">The key is not a template key, or the template was made on another machine or PID namespace (<see cref="WarmStartTemplate.ForeignHost"/>).</exception>
    Task RemoveTemplateAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="RemoveTemplateAsync(string, CancellationToken)"/>; with <paramref name="force"/>,
    /// also a template made on another machine or in another PID namespace.
    /// </summary>
    /// <param name="key">The template's key (<see cref="WarmStartTemplate.Key"/>).</param>
    /// <param name="force">Remove a template made elsewhere too.</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <exception cref="LinuxKitException">The key is not a template key, or the template was made elsewhere without <paramref name="force"/>.</exception>
    Task RemoveTemplateAsync(string key, bool force, CancellationToken cancellationToken = default);
}
