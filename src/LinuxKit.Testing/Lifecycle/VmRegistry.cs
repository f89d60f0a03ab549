using LinuxKit.Testing.Logs;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// The VMs' records as they are now: found by id or name, and checked against live processes
/// (a record whose hypervisor is gone says Stopped once it is read; one made on another
/// machine or in another PID namespace stays as it was).
/// </summary>
internal sealed class VmRegistry(StateStore store, VmRuntime runtime, TimeProvider time, long consoleLogLimit)
{
    public StateStore Store => store;

    /// <exception cref="LinuxKitException">No VM has that id or name.</exception>
    public VmRecord Find(string idOrName)
    {
        ArgumentException.ThrowIfNullOrEmpty(idOrName);
        var record = store.Load(idOrName) ?? store.LoadAll().FirstOrDefault(r => r.Name == idOrName);
        return record ?? throw new LinuxKitException($"No VM with id or name '{idOrName}' in state directory '{store.Root}'.");
    }

    public async Task<IReadOnlyList<Container>> ListAsync(CancellationToken cancellationToken) =>
        await store.LockedAsync(() => store.LoadAll().Select(r => Refresh(r).ToContainer()).ToList(), cancellationToken).ConfigureAwait(false);

    /// <summary>The record, Stopped when its hypervisor is gone (saved so), as it was otherwise.</summary>
    public VmRecord Refresh(VmRecord record)
    {
        // Elsewhere its PID names no process here (or another one): absent is no proof of stopped.
        if (!record.Status.IsLive() || record.Elsewhere is not null) return record;
        if (record.IsItsHypervisorAlive())
        {
            // A VM no process of this SDK watches (detached) has its log kept in bounds here.
            if (!runtime.WatchesConsole(record.Id)) ConsoleRotation.RotateIfOver(record.Files.ConsoleLog, consoleLogLimit);
            return record;
        }
        // Still being prepared by its process, for as long as that process lives (a host clock
        // that jumps ahead must not end a preparation); one whose owner is not known, for a while.
        if (record.Status == ContainerStatus.Starting && record.Pid == 0
            && (record.OwnerAlive || (record.OwnerPid is null && time.GetUtcNow() - record.StartedAt < TimeLimits.Preparation)))
            return record;
        var stopped = record with
        {
            Status = ContainerStatus.Stopped,
            StoppedAt = time.GetUtcNow(),
            ExitCode = ExitTrace.Infer(record.Files.HypervisorLog, record.Files.ConsoleLog),
        };
        stopped.RemoveRuntimeFiles();
        try
        {
            store.Save(stopped);
        }
        catch (LinuxKitException e) when (e.InnerException is IOException)
        {
            // A full disk: reading the VMs must not fail on it. The record keeps saying it was
            // live, and the next read finds its hypervisor gone again.
        }
        return stopped;
    }

    /// <summary>
    /// Saves a booting VM's record unless another process stopped it meanwhile (compare and set):
    /// then the boot ends, and its undo kills what it started.
    /// </summary>
    public async Task SaveWhileStartingAsync(VmRecord record, string description, CancellationToken cancellationToken)
    {
        if (!await store.LockedAsync(() => store.SaveIf(record, ContainerStatus.Starting), cancellationToken).ConfigureAwait(false))
            throw new LinuxKitException($"{description} was stopped by another process while it booted.");
    }
}
