namespace LinuxKit.Testing.Hypervisors.KubeVirt;

/// <summary>
/// The cluster a manager's KubeVirt VMs go to, resolved from <see cref="KubeVirtOptions"/> and
/// the environment once: the kubeconfig file (or files, separated as in KUBECONFIG), its
/// context and the namespace.
/// </summary>
internal sealed record KubeVirtCluster(string Kubeconfig, string? Context, string? Namespace)
{
    /// <summary>The name of the VMI of VM <paramref name="vmId"/>.</summary>
    public static string VmiName(string vmId) => $"linuxkit-testing-{vmId}";

    /// <exception cref="LinuxKitException">There is no kubeconfig file where the options and the environment point.</exception>
    public static KubeVirtCluster Resolve(KubeVirtOptions options)
    {
        var kubeconfig = options.Kubeconfig
            ?? LinuxKitEnvironment.Read(LinuxKitEnvironment.Kubeconfig)
            ?? LinuxKitEnvironment.Read("KUBECONFIG")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".kube", "config");
        // A list (KUBECONFIG's form) is merged by the bridge as kubectl merges it; files of the
        // list that do not exist are skipped, as kubectl skips them.
        var files = kubeconfig.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var existing = files.Where(File.Exists).Select(Path.GetFullPath).ToList();
        if (existing.Count == 0)
            throw new LinuxKitException(
                $"KubeVirt needs a kubeconfig, and '{kubeconfig}' does not exist. Set KubeVirtOptions.Kubeconfig, LINUXKIT_TESTING_KUBECONFIG or KUBECONFIG to the cluster's kubeconfig.");
        return new KubeVirtCluster(
            string.Join(Path.PathSeparator, existing),
            options.Context ?? LinuxKitEnvironment.Read(LinuxKitEnvironment.KubeContext),
            options.Namespace ?? LinuxKitEnvironment.Read(LinuxKitEnvironment.KubeNamespace));
    }

    /// <summary>The arguments that name this cluster to the bridge program.</summary>
    public IEnumerable<string> Arguments()
    {
        yield return "--kubeconfig";
        yield return Kubeconfig;
        if (Context is not null)
        {
            yield return "--context";
            yield return Context;
        }
        if (Namespace is not null)
        {
            yield return "--namespace";
            yield return Namespace;
        }
    }
}
