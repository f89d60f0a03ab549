using System.Text;

namespace LinuxKit.Testing.Images;

/// <summary>
/// The CD-ROM every VM gets, read by both ways a guest may take its key at boot: LinuxKit's
/// metadata package and cloud-init's NoCloud datasource.
/// </summary>
/// <remarks>
/// One disk serves both because they look for the same thing: LinuxKit's metadata probes the
/// disks labelled <c>cidata</c> before other CD-ROMs and reads <c>user-data</c>, falling back to
/// <c>config</c>. So <c>user-data</c> must be LinuxKit's JSON (and <c>config</c> the same, for
/// LinuxKit releases that read only that), and the key reaches cloud-init through NoCloud's
/// <c>meta-data</c>, whose <c>public-keys</c> cloud-init installs for the default user. cloud-init
/// ignores user-data that has no header it knows (it logs that it did), and a second disk would
/// not do: LinuxKit would read whichever <c>cidata</c> disk it found first.
/// </remarks>
internal static class MetadataDisk
{
    /// <summary>The ISO: <paramref name="linuxKitJson"/> as <c>config</c> and <c>user-data</c>, and a NoCloud <c>meta-data</c> with <paramref name="authorizedKey"/>.</summary>
    /// <param name="linuxKitJson">LinuxKit's metadata (<see cref="LinuxKitMetadata.Build"/>).</param>
    /// <param name="authorizedKey">The public key line the guest is to accept.</param>
    /// <param name="instanceId">NoCloud's instance id: cloud-init runs its once-per-instance steps again when it changes.</param>
    /// <param name="timestamp">The files' time.</param>
    public static byte[] Build(byte[] linuxKitJson, string authorizedKey, string instanceId, DateTime timestamp) =>
        MetadataIso.Build(
            [("config", linuxKitJson), ("user-data", linuxKitJson), ("meta-data", NoCloudMetaData(authorizedKey, instanceId))],
            timestamp,
            volumeId: "cidata");

    /// <summary>NoCloud's meta-data (YAML): the instance id and the key as the one entry of <c>public-keys</c>.</summary>
    public static byte[] NoCloudMetaData(string authorizedKey, string instanceId) =>
        Encoding.UTF8.GetBytes($"instance-id: {Quoted(instanceId)}\npublic-keys:\n  - {Quoted(authorizedKey.Trim())}\n");

    // A YAML single-quoted scalar: nothing is special inside but the quote, written twice.
    private static string Quoted(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";
}
