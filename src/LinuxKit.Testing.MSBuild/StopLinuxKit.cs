using Microsoft.Build.Framework;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// Stops a VM. Idempotent: a VM that is already stopped, or unknown, is a warning, so the task
/// fits cleanup targets (OnError) that run whether or not earlier steps worked.
/// </summary>
public sealed class StopLinuxKit : LinuxKitTask
{
    /// <summary>The VM's id (the Id output of StartLinuxKit).</summary>
    public string? Id { get; set; }

    /// <summary>The VM's name, instead of its id.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// True to ask the guest to power off and wait for it (up to 10 s, then signals); by default
    /// the VM is stopped as it was started (at once, unless its options said otherwise).
    /// </summary>
    public bool Graceful { get; set; }

    /// <inheritdoc />
    private protected override async Task<bool> ExecuteAsync(CancellationToken cancellationToken)
    {
        var vm = RequireVm(Id, Name);
        if (vm is null) return false;
        var manager = CreateManager();
        await using var managerDisposal = manager.ConfigureAwait(false);
        var known = (await manager.ListAsync(cancellationToken).ConfigureAwait(false)).FirstOrDefault(c => c.Id == vm || c.Name == vm);
        if (known is null)
        {
            Log.LogWarningWithCodeFromResources("StopLinuxKit.NoSuchVm", vm, manager.StateDirectory);
            return true;
        }
        if (!known.Status.IsLive())
        {
            Log.LogWarningWithCodeFromResources("StopLinuxKit.AlreadyStopped", vm, known.Status);
            return true;
        }
        if (Graceful) await manager.StopAsync(known.Id, StopMode.Graceful, cancellationToken).ConfigureAwait(false);
        else await manager.StopAsync(known.Id, cancellationToken).ConfigureAwait(false);
        Log.LogMessage(MessageImportance.Normal, "LinuxKit: VM {0} stopped", known.Id);
        Fixtures.HandOff.Clear(known.Id);
        return true;
    }
}
