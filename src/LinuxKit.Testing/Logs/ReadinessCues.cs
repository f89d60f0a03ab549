namespace LinuxKit.Testing.Logs;

/// <summary>
/// Console lines that say a booting guest may answer SSH now: its network came up or its SSH
/// server started listening. Readiness probes at that moment instead of on its timer; a guest
/// that prints none of them (LinuxKit's sshd logs to /var/log) is probed on the timer alone.
/// </summary>
internal static class ReadinessCues
{
    private static readonly string[] Lines =
    [
        "Server listening on",      // OpenSSH (sshd -e), once it listens
        "Not backgrounding",        // dropbear -F, once it listens
        "Running in background",    // dropbear daemonising itself
        "link becomes ready",       // the kernel, when a NIC's link is up (IPv6 address configuration)
        "lease of ",                // busybox udhcpc: "lease of 10.0.2.15 obtained"
        ": leased ",                // dhcpcd (LinuxKit's dhcpcd package): "eth0: leased 10.0.2.15 for 86400 seconds"
    ];

    /// <summary>How many cue lines <paramref name="consoleTail"/> holds; a change means the guest just gave one.</summary>
    public static int CountIn(string consoleTail)
    {
        var count = 0;
        foreach (var cue in Lines)
        {
            for (var at = consoleTail.IndexOf(cue, StringComparison.Ordinal); at >= 0; at = consoleTail.IndexOf(cue, at + cue.Length, StringComparison.Ordinal))
                count++;
        }
        return count;
    }

    /// <summary>The cue count of the console in <paramref name="files"/>' folder (its last 200 lines).</summary>
    public static int InConsoleOf(State.VmFiles files) => CountIn(ConsoleLog.Tail(files.ConsoleLog, lines: 200));
}
