using k8s;
using k8s.KubeConfigModels;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// Reads the kubeconfig the bridge is given: one file, or a list (the KUBECONFIG form, separated
/// by the platform's path separator) merged as kubectl merges them: the first file to name a
/// cluster, user or context wins, and the first current-context set is the current one.
/// </summary>
internal static class Kubeconfig
{
    public static KubernetesClientConfiguration Load(string files, string? context)
    {
        var paths = files.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (paths.Length <= 1) return KubernetesClientConfiguration.BuildConfigFromConfigFile(files, context);

        // Each file read on its own, so its relative certificate paths resolve against its folder.
        var loaded = paths.Select(p => KubernetesClientConfiguration.LoadKubeConfig(new FileInfo(p))).ToList();
        var merged = new K8SConfiguration
        {
            ApiVersion = "v1",
            Kind = "Config",
            CurrentContext = loaded.Select(c => c.CurrentContext).FirstOrDefault(c => !string.IsNullOrEmpty(c)),
            Clusters = loaded.SelectMany(c => c.Clusters ?? []).DistinctBy(c => c.Name).ToList(),
            Users = loaded.SelectMany(c => c.Users ?? []).DistinctBy(u => u.Name).ToList(),
            Contexts = loaded.SelectMany(c => c.Contexts ?? []).DistinctBy(c => c.Name).ToList(),
        };
        return KubernetesClientConfiguration.BuildConfigFromConfigObject(merged, context);
    }
}
