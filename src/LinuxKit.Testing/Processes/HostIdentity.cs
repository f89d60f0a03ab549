using System.Globalization;

namespace LinuxKit.Testing.Processes;

/// <summary>
/// Where a process runs: the machine (its machine-id), the machine's boot (its boot id) and the
/// PID namespace. A PID means something only where it was recorded: a state directory reached
/// from two machines (an NFS or mounted home) or from a container sharing <c>$HOME</c> holds
/// PIDs this process cannot see or, worse, PIDs that name other processes here. Records carry
/// the identity of the process that wrote them, and the SDK checks, signals and cleans up only
/// what was recorded where it runs.
/// </summary>
internal sealed record HostIdentity
{
    /// <summary>The machine's id (<c>/etc/machine-id</c>; the host name where there is none).</summary>
    public string? Machine { get; init; }

    /// <summary>The kernel's boot id: a record from an earlier boot names processes that are all gone.</summary>
    public string? Boot { get; init; }

    /// <summary>The PID namespace (<c>pid:[inode]</c>); empty where the OS has none.</summary>
    public string? PidNamespace { get; init; }

    /// <summary>The host name, for people: it says where a foreign VM runs.</summary>
    public string? Name { get; init; }

    private static readonly Lazy<HostIdentity> CurrentIdentity = new(Read);

    /// <summary>This process's machine, boot and PID namespace (read once).</summary>
    public static HostIdentity Current => CurrentIdentity.Value;

    /// <summary>
    /// Null when <paramref name="recorded"/> is where this process runs (or names no place: a record
    /// from before identities were kept, or one from an earlier boot of this machine, whose
    /// processes are gone), else where it is, in words.
    /// </summary>
    public static string? Elsewhere(HostIdentity? recorded, HostIdentity here)
    {
        if (recorded is null) return null;
        if (!string.Equals(recorded.Machine, here.Machine, StringComparison.Ordinal))
        {
            var machine = recorded.Machine ?? "";
            return string.Create(CultureInfo.InvariantCulture, $"on machine '{recorded.Name}' (machine-id {machine[..Math.Min(12, machine.Length)]})");
        }
        if (!string.Equals(recorded.Boot, here.Boot, StringComparison.Ordinal)) return null;
        if (!string.Equals(recorded.PidNamespace, here.PidNamespace, StringComparison.Ordinal))
            return $"in another PID namespace of this machine ({recorded.PidNamespace})";
        return null;
    }

    private static HostIdentity Read()
    {
        var name = Environment.MachineName;
        if (!OperatingSystem.IsLinux())
        {
            // macOS has no PID namespaces; its host name stands for the machine, and the boot
            // time for the boot.
            return new HostIdentity { Machine = "host:" + name, Boot = BootTimeOfMac(), PidNamespace = "", Name = name };
        }
        var machine = FirstLine("/etc/machine-id") ?? FirstLine("/var/lib/dbus/machine-id") ?? "host:" + name;
        string? pidNamespace;
        try
        {
            pidNamespace = new FileInfo("/proc/self/ns/pid").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            pidNamespace = null;
        }
        return new HostIdentity { Machine = machine, Boot = FirstLine("/proc/sys/kernel/random/boot_id") ?? "", PidNamespace = pidNamespace ?? "", Name = name };
    }

    private static string? FirstLine(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return text.Length > 0 ? text : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string BootTimeOfMac()
    {
        try
        {
            using var sysctl = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sysctl", ["-n", "kern.boottime"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            });
            if (sysctl is null) return "";
            var text = sysctl.StandardOutput.ReadToEnd().Trim();
            sysctl.WaitForExit();
            return text;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }
}
