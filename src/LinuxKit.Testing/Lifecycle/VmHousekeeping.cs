using LinuxKit.Testing.Templates;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// Removes what is no longer used: a stopped VM's record and folder, and on prune every stopped
/// VM, every VM whose owner died without it, stale warm-start templates, and what a hypervisor
/// with remote resources left behind. Nothing recorded on another machine or in another PID
/// namespace: its processes cannot be checked from here.
/// </summary>
internal sealed class VmHousekeeping(VmRegistry registry, VmRuntime runtime, VmStopper stopper, HypervisorChoice hypervisors, TemplateStore templates, long templateCacheLimit, ILogger logger)
{
    public async Task RemoveAsync(string id, bool force, CancellationToken cancellationToken)
    {
        var record = registry.Find(id);
        if (record.Elsewhere is { } where)
        {
            // Its VM may well run there: only the user, knowingly, forgets it; nothing is signalled.
            if (!force) record.RequireHere("removed");
            await registry.Store.LockedAsync(() => registry.Store.Delete(record.Id), cancellationToken).ConfigureAwait(false);
            runtime.Forget(record.Id);
            logger.LogWarning("VM {Id}'s record removed by force; the VM it names runs {Where} untracked if it still runs", record.Id, where);
            return;
        }
        if (record.Damage is not null)
        {
            await stopper.RemoveDamagedAsync(record, cancellationToken).ConfigureAwait(false);
            return;
        }
        var store = registry.Store;
        var current = await store.LockedAsync(() => registry.Refresh(record), cancellationToken).ConfigureAwait(false);
        if (current.Status.IsLive())
            throw new LinuxKitException($"VM {record.Id} is {current.Status.ToString().ToLowerInvariant()}; stop it before removing it.");
        await store.LockedAsync(() => store.Delete(record.Id), cancellationToken).ConfigureAwait(false);
        runtime.Forget(record.Id);
        logger.LogInformation("VM {Id} removed", record.Id);
    }

    public async Task<PruneResult> PruneAsync(bool dryRun, CancellationToken cancellationToken)
    {
        // A VM of an owner that died should have died with it (its watchdog); one that did not is
        // an orphan nobody will stop.
        var prunable = (await registry.ListAsync(cancellationToken).ConfigureAwait(false))
            .Where(vm => vm.ForeignHost is null)
            .Where(vm => vm.Status is ContainerStatus.Stopped or ContainerStatus.Error || (vm.OwnerPid is not null && !vm.OwnerAlive))
            .ToList();
        if (!dryRun)
        {
            foreach (var vm in prunable)
            {
                if (vm.Status.IsLive()) await stopper.StopAsync(registry.Find(vm.Id), StopMode.Fast, cancellationToken).ConfigureAwait(false);
                await RemoveAsync(vm.Id, force: false, cancellationToken).ConfigureAwait(false);
            }
        }
        // What a VM whose process was killed outright left outside this host has no record left
        // to find it by: its hypervisor is asked.
        IReadOnlyList<string> remote = hypervisors.Remote is { } owner
            ? await owner.PruneRemoteAsync(dryRun, cancellationToken).ConfigureAwait(false)
            : [];
        return new PruneResult(prunable, templates.Prune(dryRun, templateCacheLimit)) { VirtualMachineInstances = remote };
    }
}
