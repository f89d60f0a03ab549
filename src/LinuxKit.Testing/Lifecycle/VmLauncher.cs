using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// The one way every VM starts, whether it boots cold, becomes a warm-start template, is
/// restored from one or is handed the template just made for it (<see cref="AdoptAsync"/>): host ports reserved, the watchdog started, the hypervisor started, a saved
/// state loaded if there is one, and the guest's SSH answering.
/// </summary>
internal sealed class VmLauncher(PortAllocator ports, VmRegistry registry, VmRuntime runtime, TimeProvider time)
{
    /// <summary>
    /// Reserves the VM's host ports, starts its hypervisor for <paramref name="spec"/> (the ports
    /// filled in), lets <paramref name="restore"/> load a saved state if there is one, and waits
    /// until the guest runs a command over SSH with <paramref name="sshKey"/>.
    /// </summary>
    public async Task<ReadySession> LaunchAsync(
        BootAttempt boot, IHypervisor hypervisor, VmSpec spec, RunOptions options, string sshKey, TimeSpan timeout,
        Func<ProcessIdentity, CancellationToken, Task>? restore, CancellationToken cancellationToken)
    {
        var sshReservation = options.SshPort == 0 ? ports.ReserveFree() : ports.ReserveExact(options.SshPort, "SSH");
        boot.Reservations.Add(sshReservation);
        var forwards = new List<PortForward>();
        foreach (var mapping in options.Ports)
        {
            var reservation = mapping.HostPort == 0
                ? ports.ReserveFree()
                : ports.ReserveExact(mapping.HostPort, $"forwarded to guest port {mapping.GuestPort}");
            boot.Reservations.Add(reservation);
            forwards.Add(new PortForward(reservation.Port, mapping.GuestPort));
        }
        var record = boot.Record with { SshPort = sshReservation.Port, Ports = forwards.ToDictionary(f => f.HostPort, f => f.GuestPort) };
        boot.Record = record;
        await registry.SaveWhileStartingAsync(record, boot.Description, cancellationToken).ConfigureAwait(false);
        spec = spec with { SshPort = sshReservation.Port, Ports = forwards };

        // The watchdog starts before the hypervisor: there is no moment in which this process
        // could die and leave a VM that nothing will stop. A detached VM has one too until it
        // runs: a boot nobody will finish is not left running.
        runtime.Guard(record.Id, () => OwnerWatchdog.Start(spec.Files.PidFile, record.RuntimeFiles, hypervisor.TerminationGrace));
        var process = await hypervisor.StartAsync(spec, cancellationToken).ConfigureAwait(false);
        boot.Process = process;
        boot.ReleasePorts();
        record = record with { Pid = process.Pid, PidStartTime = process.StartTime, StartedAt = time.GetUtcNow() };
        boot.Record = record;
        await registry.SaveWhileStartingAsync(record, boot.Description, cancellationToken).ConfigureAwait(false);

        if (restore is not null) await restore(process, cancellationToken).ConfigureAwait(false);
        return await WaitForSshAsync(boot, process, sshKey, timeout, restored: restore is not null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes a hypervisor that already runs in the VM's folder (the warm-start template made for
    /// this VM) the VM's own: its record names the process and its SSH port, this process's
    /// watchdog guards it from then on (<paramref name="releasePreviousGuard"/> lets the old one
    /// go), and the guest answers over SSH with <paramref name="sshKey"/>, unless it comes with a
    /// session still open (<paramref name="ready"/>).
    /// </summary>
    public async Task<ReadySession> AdoptAsync(
        BootAttempt boot, IHypervisor hypervisor, ProcessIdentity process, int sshPort, string sshKey, TimeSpan timeout,
        Action releasePreviousGuard, ReadySession? ready, CancellationToken cancellationToken)
    {
        var record = boot.Record with { SshPort = sshPort, Ports = [], Pid = process.Pid, PidStartTime = process.StartTime, StartedAt = time.GetUtcNow() };
        boot.Record = record;
        boot.Process = process;
        // Guarded without a gap: the new watchdog runs before the old one is released.
        runtime.Guard(record.Id, () => OwnerWatchdog.Start(record.Files.PidFile, record.RuntimeFiles, hypervisor.TerminationGrace));
        releasePreviousGuard();
        await registry.SaveWhileStartingAsync(record, boot.Description, cancellationToken).ConfigureAwait(false);
        return ready ?? await WaitForSshAsync(boot, process, sshKey, timeout, restored: true, cancellationToken).ConfigureAwait(false);
    }

    private static Task<ReadySession> WaitForSshAsync(BootAttempt boot, ProcessIdentity process, string sshKey, TimeSpan timeout, bool restored, CancellationToken cancellationToken) =>
        WaitForSshAsync(
            boot.Record.Files, new SshEndpoint(Loopback.Address, boot.Record.SshPort, boot.Record.SshUser, sshKey), process, timeout, boot.Description, restored, cancellationToken);

    /// <summary>
    /// Waits until the guest that <paramref name="process"/> runs with its console and logs in
    /// <paramref name="files"/> runs a command at <paramref name="endpoint"/>, failing at once
    /// when the process dies or the console says the boot failed.
    /// </summary>
    public static Task<ReadySession> WaitForSshAsync(
        VmFiles files, SshEndpoint endpoint, ProcessIdentity process, TimeSpan timeout, string description, bool restored, CancellationToken cancellationToken) =>
        SshReadiness.WaitAsync(
            endpoint,
            hypervisorExited: () => !process.IsAlive(),
            bootFailed: () => BootFailure.InLogsOf(files),
            consoleTail: () => ConsoleLog.Tail(files.ConsoleLog),
            readinessCues: () => ReadinessCues.InConsoleOf(files),
            timeout,
            description,
            restored,
            cancellationToken);
}
