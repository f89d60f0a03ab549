using System.Globalization;
using System.Text.Json.Nodes;
using LinuxKit.Testing.Processes;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>Which of the SDK's VMIs nothing will delete any more.</summary>
internal static class Orphans
{
    /// <summary>This process's machine-id and PID namespace, as the owner-namespace label writes them.</summary>
    public static string Here
    {
        get
        {
            var here = HostIdentity.Current;
            var pidNamespace = new string((here.PidNamespace ?? "").Where(char.IsAsciiDigit).ToArray());
            return VmiManifest.LabelValue($"{here.Machine}.{pidNamespace}");
        }
    }

    /// <summary>
    /// True for a VMI not being deleted already that is past its expiry (from any machine), or whose bridge process on
    /// <paramref name="host"/> (this machine) and in <paramref name="place"/> (this machine-id
    /// and PID namespace) is gone: its PID is free, a zombie, or taken by a process that started
    /// at another time. A bridge in another PID namespace of a machine with the same host name (a
    /// container, a cloned machine) is not judged from here.
    /// </summary>
    /// <param name="vmi">The VMI as the cluster lists it.</param>
    /// <param name="host">This machine, as the owner-host label writes it.</param>
    /// <param name="place">This machine and PID namespace, as the owner-namespace label writes them (<see cref="Here"/>); VMIs from before that label are judged by host name alone.</param>
    /// <param name="boot">This machine's boot, as the owner-boot label writes it: a bridge of an earlier boot is gone whatever its PID now names.</param>
    /// <param name="now">The time expiries are compared with.</param>
    /// <param name="startTimeOf">The start time of the live process with a PID; null when none lives.</param>
    public static bool IsOrphan(JsonNode vmi, string host, string place, string boot, DateTimeOffset now, Func<int, string?> startTimeOf)
    {
        var metadata = vmi["metadata"];
        // Deleted already, terminating (a cluster lists it for seconds more): not to delete again.
        if (metadata?["deletionTimestamp"] is not null) return false;
        var expiresAt = metadata?["annotations"]?[VmiManifest.ExpiresAtAnnotation]?.GetValue<string>();
        if (expiresAt is not null && DateTimeOffset.TryParse(expiresAt, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var expiry) && expiry < now)
            return true;

        var labels = metadata?["labels"];
        if (labels?[VmiManifest.OwnerHostLabel]?.GetValue<string>() != host) return false;
        if (labels?[VmiManifest.OwnerNamespaceLabel]?.GetValue<string>() is { } owner && owner != place) return false;
        if (labels?[VmiManifest.OwnerBootLabel]?.GetValue<string>() is { } ownerBoot && ownerBoot != boot) return true;
        if (!int.TryParse(labels?[VmiManifest.OwnerPidLabel]?.GetValue<string>(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) return false;
        return startTimeOf(pid) is not { } started || VmiManifest.LabelValue(started) != labels?[VmiManifest.OwnerStartLabel]?.GetValue<string>();
    }

    /// <summary>This machine's boot, as the owner-boot label writes it.</summary>
    public static string Boot => VmiManifest.LabelValue(HostIdentity.Current.Boot ?? "");

    /// <summary>The start time of the live (not zombie) process <paramref name="pid"/>; null when there is none.</summary>
    public static string? StartTimeOfLiveProcess(int pid) => ProcessIdentity.Of(pid) is { } process && process.IsAlive() ? process.StartTime : null;
}
