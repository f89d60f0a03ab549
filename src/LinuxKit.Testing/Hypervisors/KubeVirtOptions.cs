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
    /// Written on each VMI as its expiry (annotation <c>linuxkit-testing/expires-at</c>, default
    /// 2 hours after its start): <see cref="IManager.PruneAsync"/> deletes a VMI past it from any
    /// machine, whatever became of the process that made it.
    /// </summary>
    public TimeSpan MaxLifetime { get; init; } = TimeSpan.FromHours(2);

    /// <summary>The LinuxKit.Testing.KubeVirt program (default: found beside this assembly or the application).</summary>
    public string? Bridge { get; init; }
}
