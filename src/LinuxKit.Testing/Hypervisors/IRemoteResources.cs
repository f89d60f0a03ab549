namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// A hypervisor whose VMs hold resources outside this host (a cluster's VMIs), which a VM whose
/// owner was killed outright leaves behind with no record to find them by.
/// </summary>
internal interface IRemoteResources
{
    /// <summary>Removes (with <paramref name="dryRun"/>: names only) what this host's VMs left behind; returns their names.</summary>
    Task<IReadOnlyList<string>> PruneRemoteAsync(bool dryRun, CancellationToken cancellationToken);
}
