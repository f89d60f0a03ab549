namespace LinuxKit.Testing;

/// <summary>What <see cref="IManager.PruneAsync"/> removed, or on a dry run would remove.</summary>
/// <param name="Vms">The VMs, as they were listed before.</param>
/// <param name="Templates">The keys of the warm-start templates.</param>
public sealed record PruneResult(IReadOnlyList<Container> Vms, IReadOnlyList<string> Templates);
