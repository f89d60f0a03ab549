using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// Ends VMs: through their own hypervisor (fast or graceful), a fast stop flushing what the
/// guest wrote to volumes first; a VM whose hypervisor is already gone gets the exit code its
/// logs show. Either way its runtime share and runtime files go and its record says Stopped.
/// A damaged record is trusted with nothing and removed.
/// </summary>
internal sealed class VmStopper(VmRegistry registry, VmRuntime runtime, HypervisorChoice hypervisors, GuestAccess guests, TimeSpan stopTimeout, ILogger logger, TimeProvider time)
{
    private StateStore Store => registry.Store;

    public async Task StopAsync(VmRecord record, StopMode mode, CancellationToken cancellationToken)
    {
        if (record.Damage is not null)
        {
            await RemoveDamagedAsync(record, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (record.Elsewhere is not null)
        {
            if (record.Status.IsLive()) record.RequireHere("stopped");
            return; // stopped there already: nothing to do from here
        }
        var exitCode = record.ExitCode;
        if (record.IsItsHypervisorAlive())
        {
            logger.LogInformation("Stopping VM {Id} ({Mode})", record.Id, mode);
            if (mode == StopMode.Fast && record.Volumes.Count > 0) await FlushVolumesAsync(record).ConfigureAwait(false);
            // The connection is closed while the guest still answers: after a fast stop its
            // socket is dead, and closing channels on it fails.
            runtime.Sessions.Close(record.Id);
            exitCode = await hypervisors.For(record).StopAsync(record.Files, record.Process, mode, stopTimeout, cancellationToken).ConfigureAwait(false);
        }
        else if (record.Status.IsLive())
        {
            exitCode = ExitTrace.Infer(record.Files.HypervisorLog, record.Files.ConsoleLog);
        }
        await runtime.ReleaseAsync(record.Id, forget: false).ConfigureAwait(false);
        record.RemoveRuntimeFiles();
        var stopped = record with { Status = ContainerStatus.Stopped, StoppedAt = record.StoppedAt ?? time.GetUtcNow(), ExitCode = exitCode };
        await Store.LockedAsync(() => Store.Save(stopped), cancellationToken).ConfigureAwait(false);
        logger.LogInformation("VM {Id} stopped", record.Id);
    }

    // What the guest wrote to a host folder may still sit in its page cache; a fast stop would
    // lose it.
    private async Task FlushVolumesAsync(VmRecord record)
    {
        using var limit = new CancellationTokenSource(TimeLimits.VolumeFlush);
        try
        {
            await guests.For(record.Id).UseAsync(session => session.RunAsync("sync", limit.Token), limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LinuxKitException or SshException or IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            logger.LogWarning("Could not flush VM {Id}'s volumes before stopping it: {Reason}", record.Id, e.Message);
        }
    }

    /// <summary>
    /// Removes a record nothing in which is trusted: its folder's own pid file may still name the
    /// VM's hypervisor, which is ended only if it proves to be one.
    /// </summary>
    public async Task RemoveDamagedAsync(VmRecord record, CancellationToken cancellationToken)
    {
        if (ProcessIdentity.ReadPidFile(record.Files.PidFile) is { } pid
            && ProcessIdentity.Of(pid) is { } process
            && process.IsHypervisorOf(record.Files.PidFile))
        {
            await process.KillAsync(cancellationToken).ConfigureAwait(false);
        }
        await Store.LockedAsync(() => Store.Delete(record.Id), cancellationToken).ConfigureAwait(false);
        logger.LogInformation("VM {Id}'s untrusted record and folder removed", record.Id);
    }
}
