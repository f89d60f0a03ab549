using System.Globalization;

namespace LinuxKit.Testing.Processes;

/// <summary>
/// A process as the pair (PID, start time). PIDs are reused; a PID whose start time changed is
/// another process, and the SDK never signals it.
/// </summary>
internal readonly record struct ProcessIdentity(int Pid, string StartTime)
{
    /// <summary>The identity of a live process, or null when it does not exist.</summary>
    public static ProcessIdentity? Of(int pid)
    {
        var start = ReadStartTime(pid);
        return start is null ? null : new ProcessIdentity(pid, start);
    }

    /// <summary>The PID a hypervisor wrote to its pid file; null when the file is missing or holds no PID.</summary>
    public static int? ReadPidFile(string path)
    {
        try
        {
            return int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) ? pid : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>True while the very process this identity names is alive.</summary>
    public bool IsAlive()
    {
        if (Pid <= 0) return false;
        if (OperatingSystem.IsLinux())
        {
            var stat = ReadLinuxStat(Pid);
            return stat is { } s && s.StartTime == StartTime && !s.Ended;
        }
        return PsField(Pid, "lstart=") == StartTime && PsField(Pid, "stat=")?.StartsWith('Z') != true;
    }

    private static string? ReadStartTime(int pid)
    {
        if (pid <= 0) return null;
        return OperatingSystem.IsLinux() ? ReadLinuxStat(pid)?.StartTime : PsField(pid, "lstart=");
    }

    // One read of /proc/PID/stat for both fields: two reads could straddle the process's end.
    // A process that has exited but still has its /proc entry is a zombie (Z) or, while its parent
    // reaps it, dead (X, or x on older kernels): ended either way.
    private static (string StartTime, bool Ended)? ReadLinuxStat(int pid)
    {
        string stat;
        try { stat = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name (field 2) may hold spaces and parentheses: count from its end.
        var close = stat.LastIndexOf(')');
        if (close < 0 || close + 2 >= stat.Length) return null;
        var fields = stat[(close + 2)..].Split(' ');
        if (fields.Length <= 19) return null;
        return (fields[19], fields[0] is "Z" or "X" or "x"); // field 3: state; field 22: start time in clock ticks since boot
    }

    private static string? PsField(int pid, string field)
    {
        using var ps = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ps", ["-o", field, "-p", pid.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        });
        if (ps is null) return null;
        var text = ps.StandardOutput.ReadToEnd().Trim();
        ps.WaitForExit();
        return ps.ExitCode == 0 && text.Length > 0 ? text : null;
    }

    /// <summary>
    /// True when this live process is a hypervisor the SDK started for the VM whose pid file is
    /// <paramref name="pidFile"/>: it runs as the current user and its command line names that
    /// pid file (as the owner watchdog checks). A record that names any other process, a reused
    /// PID or one planted by someone else, never gets it signalled.
    /// </summary>
    public bool IsHypervisorOf(string pidFile)
    {
        if (!IsAlive()) return false;
        if (OperatingSystem.IsLinux())
        {
            if (State.PrivateFiles.OwnerOf($"/proc/{Pid}") != State.PrivateFiles.CurrentUser()) return false;
            try
            {
                return File.ReadAllText($"/proc/{Pid}/cmdline").Split('\0').Contains(pidFile, StringComparer.Ordinal);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }
        var uid = PsField(Pid, "uid=");
        return uid == State.PrivateFiles.CurrentUser().ToString(CultureInfo.InvariantCulture)
            && PsField(Pid, "args=")?.Contains(pidFile, StringComparison.Ordinal) == true;
    }

    /// <summary>Sends a signal, only if this identity still names a live process.</summary>
    public bool Signal(UnixSignal signal) => IsAlive() && NativeMethods.Kill(Pid, (int)signal) == 0;

    /// <summary>
    /// Ends a hypervisor that has nothing to shut down gracefully (a boot that failed, a template
    /// or clone given up): SIGKILL, then up to 10 s for it to be gone.
    /// </summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        if (!Signal(UnixSignal.Kill)) return;
        await WaitForExitAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Waits until the process is gone or the timeout passes; true when it is gone.</summary>
    public Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var self = this; // a struct's 'this' cannot be captured by the lambda
        return Polling.UntilAsync(() => !self.IsAlive(), TimeSpan.FromMilliseconds(50), timeout, cancellationToken);
    }
}
