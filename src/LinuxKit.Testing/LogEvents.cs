using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing;

/// <summary>Event ids on the SDK's log lines that adapters show differently from the rest.</summary>
internal static class LogEvents
{
    /// <summary>
    /// Information the user should see even where information is hidden (MSBuild's normal
    /// verbosity shows high-importance messages only), but that is nothing to fix in the build or
    /// test at hand, so not a warning: e.g. that VMs run under TCG because KVM does not work here.
    /// </summary>
    public static readonly EventId Notice = new(1001, "LinuxKitNotice");
}
