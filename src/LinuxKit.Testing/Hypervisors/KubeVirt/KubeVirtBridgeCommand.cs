using System.Globalization;

namespace LinuxKit.Testing.Hypervisors.KubeVirt;

/// <summary>
/// The command lines of the bridge program (LinuxKit.Testing.KubeVirt): pure, so they are
/// tested without a cluster. <c>run</c> makes a VM's VMI and is the VM's local process while it
/// lives; <c>delete</c> and <c>prune</c> are one-shot.
/// </summary>
internal static class KubeVirtBridgeCommand
{
    /// <summary>
    /// Runs the VM of <paramref name="spec"/>: its VMI boots the spec's cluster disk with the
    /// metadata in <paramref name="userData"/>; its SSH port and forwards listen on loopback.
    /// </summary>
    public static IReadOnlyList<string> Run(VmSpec spec, KubeVirtCluster cluster, KubeVirtOptions options, string userData, string ownerHost)
    {
        var args = new List<string> { "run" };
        args.AddRange(cluster.Arguments());
        args.AddRange([
            "--name", KubeVirtCluster.VmiName(spec.Id),
            "--disk", spec.Image.Path,
            "--memory", Number(spec.MemoryMb),
            "--cpus", Number(spec.Cpus),
            "--user-data", userData,
            "--ssh-port", Number(spec.SshPort),
        ]);
        // A cluster disk's content is not read here: only what the caller asked for is passed.
        if (spec.Boot.Uefi) args.Add("--uefi");
        if (options.NetworkPolicy) args.Add("--network-policy");
        if (spec.Boot.Architecture == GuestArchitecture.Arm64) args.AddRange(["--architecture", "arm64"]);
        foreach (var forward in spec.Ports) args.AddRange(["--forward", $"{Number(forward.HostPort)}:{Number(forward.GuestPort)}"]);
        args.AddRange([
            "--console-log", spec.Files.ConsoleLog,
            "--pidfile", spec.Files.PidFile,
            "--owner-host", ownerHost,
            "--schedule-timeout", Number((int)Math.Ceiling(options.ScheduleTimeout.TotalSeconds)),
            "--lease", Number((int)Math.Ceiling(options.Lease.TotalSeconds)),
        ]);
        return args;
    }

    /// <summary>Deletes the VMI of VM <paramref name="vmId"/> (none is no error).</summary>
    public static IReadOnlyList<string> Delete(string vmId, KubeVirtCluster cluster) =>
        ["delete", .. cluster.Arguments(), "--name", KubeVirtCluster.VmiName(vmId)];

    /// <summary>
    /// Deletes the SDK's VMIs whose bridge on <paramref name="ownerHost"/> is gone, and any past
    /// its expiry; prints each name.
    /// </summary>
    public static IReadOnlyList<string> Prune(KubeVirtCluster cluster, string ownerHost, bool dryRun) =>
        ["prune", .. cluster.Arguments(), "--owner-host", ownerHost, .. dryRun ? new[] { "--dry-run" } : []];

    /// <summary>Asks the cluster for the SDK's VMIs: it answers, takes the credentials and serves KubeVirt.</summary>
    public static IReadOnlyList<string> Check(KubeVirtCluster cluster) => ["check", .. cluster.Arguments()];

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);
}
