namespace LinuxKit.Testing.Images;

/// <summary>Where a KubeVirt VM's boot disk comes from.</summary>
internal enum ClusterDiskSource
{
    /// <summary>An OCI image holding the disk under /disk (KubeVirt's <c>containerDisk</c>).</summary>
    ContainerDisk,

    /// <summary>An existing PersistentVolumeClaim.</summary>
    PersistentVolumeClaim,

    /// <summary>An existing CDI DataVolume.</summary>
    DataVolume,
}

/// <summary>
/// A disk on the cluster, named the way the SDK takes images for KubeVirt:
/// <c>containerdisk:REFERENCE</c>, <c>pvc:NAME</c> or <c>datavolume:NAME</c>.
/// </summary>
internal sealed record ClusterDisk(ClusterDiskSource Source, string Name)
{
    private static readonly (string Prefix, ClusterDiskSource Source)[] Prefixes =
    [
        ("containerdisk:", ClusterDiskSource.ContainerDisk),
        ("pvc:", ClusterDiskSource.PersistentVolumeClaim),
        ("datavolume:", ClusterDiskSource.DataVolume),
    ];

    /// <summary>The forms a cluster disk is written in, for error messages.</summary>
    public const string Forms = "containerdisk:REGISTRY/IMAGE:TAG (an image with the disk under /disk), pvc:NAME or datavolume:NAME";

    /// <summary>True when <paramref name="image"/> names a cluster disk rather than a local file.</summary>
    public static bool IsReference(string image) =>
        Prefixes.Any(p => image.StartsWith(p.Prefix, StringComparison.OrdinalIgnoreCase));

    /// <exception cref="LinuxKitException"><paramref name="reference"/> is not one of the forms, or names nothing.</exception>
    public static ClusterDisk Parse(string reference)
    {
        foreach (var (prefix, source) in Prefixes)
        {
            if (!reference.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) continue;
            var name = reference[prefix.Length..].Trim();
            if (name.Length == 0 || name.Any(char.IsWhiteSpace))
                throw new LinuxKitException($"Cluster disk '{reference}' names no {prefix.TrimEnd(':')}: write it as {Forms}.");
            return new ClusterDisk(source, name);
        }
        throw new LinuxKitException($"'{reference}' is not a cluster disk: write it as {Forms}.");
    }

    public override string ToString() => Source switch
    {
        ClusterDiskSource.ContainerDisk => $"containerdisk:{Name}",
        ClusterDiskSource.PersistentVolumeClaim => $"pvc:{Name}",
        _ => $"datavolume:{Name}",
    };
}
