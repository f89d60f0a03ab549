namespace LinuxKit.Testing;

/// <summary>What <see cref="IManager.PruneAsync"/> removed, or on a dry run would remove.</summary>
/// <param name="Vms">The VMs, as they were listed before.</param>
/// <param name="Templates">The keys of the warm-start templates.</param>
public sealed record PruneResult(IReadOnlyList<Container> Vms, IReadOnlyList<string> Templates)
{
    /// <summary>
    /// The names of the KubeVirt VMIs deleted (or to delete) from the cluster: those whose
    /// bridge on this machine is gone, and any past its expiry. Empty unless the manager runs
    /// KubeVirt VMs.
    /// </summary>
    public IReadOnlyList<string> VirtualMachineInstances { get; init; } = [];
}
