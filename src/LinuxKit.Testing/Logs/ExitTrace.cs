using System.Globalization;
using System.Text.RegularExpressions;

namespace LinuxKit.Testing.Logs;

/// <summary>
/// How a VM that ended on its own ended, read from what it left behind: the hypervisor is a
/// daemon, not our child, so its exit status is never delivered to us.
/// </summary>
internal static partial class ExitTrace
{
    /// <summary>128 + the signal when the hypervisor logged one, 0 when the guest powered off, else null.</summary>
    public static int? Infer(string hypervisorLog, string consoleLog)
    {
        var log = ConsoleLog.Tail(hypervisorLog);
        var signal = SignalMessage().Matches(log).LastOrDefault();
        if (signal is not null) return 128 + int.Parse(signal.Groups[1].Value, CultureInfo.InvariantCulture);
        // Linux's last words on a power-off; QEMU exits 0 after it.
        return ConsoleLog.Tail(consoleLog, 10).Contains("reboot: Power down", StringComparison.Ordinal) ? 0 : null;
    }

    // QEMU: "qemu-system-x86_64: terminating on signal 15 from pid 123 (kill)"
    [GeneratedRegex(@"terminating on signal (\d+)")]
    private static partial Regex SignalMessage();
}
