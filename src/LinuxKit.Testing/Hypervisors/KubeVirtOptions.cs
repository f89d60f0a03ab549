namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// Settings for running VMs on a Kubernetes cluster with KubeVirt (see
/// <see cref="HypervisorKind.KubeVirt"/>). Each VM is a <c>VirtualMachineInstance</c>; the
/// LinuxKit.Testing.KubeVirt package must be referenced (it is the program that talks to the
/// cluster).
/// </summary>
public sealed record KubeVirtOptions
{
    /// <summary>The kubeconfig file (default: LINUXKIT_TESTING_KUBECONFIG, else KUBECONFIG, else ~/.kube/config).</summary>
    public string? Kubeconfig { get; init; }

    /// <summary>The kubeconfig context (default: LINUXKIT_TESTING_KUBE_CONTEXT, else the file's current context).</summary>
    public string? Context { get; init; }

    /// <summary>The namespace the VMIs are made in (default: LINUXKIT_TESTING_KUBE_NAMESPACE, else the context's, else <c>default</c>).</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// How long the cluster may take to schedule a VMI and start it (pulling its container
    /// disk included) before the boot fails (default 5 minutes). The SSH wait
    /// (<see cref="RunOptions.BootTimeout"/>) starts after.
    /// </summary>
    public TimeSpan ScheduleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// How long a VMI outlives the last sign of life of the process that keeps it (default 10
    /// minutes, at least 3 seconds). The VMI's expiry (annotation
    /// <c>linuxkit-testing/expires-at</c>) is set this far ahead and renewed by the live bridge
    /// every third of it, so a VM runs as long as its test needs; once the bridge or its machine
    /// is gone the expiry lapses and <see cref="IManager.PruneAsync"/> deletes the VMI from any machine.
    /// </summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Makes a NetworkPolicy with each VMI that lets only KubeVirt's virt-api reach the guest
    /// (default false). virt-api carries the port-forward the SDK's SSH and forwarded ports go
    /// through, so the VM works as before while the rest of the pod network, open to a guest's
    /// ports otherwise, is kept out, as QEMU's forwards listen on loopback only. The policy is
    /// owned by the VMI and deleted with it. Needs <c>create</c> on <c>networkpolicies</c> and a
    /// network plugin that enforces them; a refused policy fails the boot.
    /// </summary>
    public bool NetworkPolicy { get; init; }

    /// <summary>The LinuxKit.Testing.KubeVirt program (default: found beside this assembly or the application).</summary>
    public string? Bridge { get; init; }
}
