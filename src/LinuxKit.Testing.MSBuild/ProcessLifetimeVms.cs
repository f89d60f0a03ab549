namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// The manager of the VMs that live as long as the process running the build
/// (<see cref="StartLinuxKit.StopWhenProcessEnds"/>): one per state directory and hypervisor,
/// disposed when the process exits, which stops the VMs and removes their folders. A process
/// that dies instead leaves the VMs to their watchdogs.
/// </summary>
internal static class ProcessLifetimeVms
{
    private static readonly Dictionary<string, LinuxKitManager> Managers = [];
    private static readonly List<(string VmId, string File)> HandOffs = [];

    /// <summary>Takes back VM <paramref name="vmId"/>'s hand-off <paramref name="file"/> when the VMs are stopped.</summary>
    public static void ClearAtExit(string vmId, string file)
    {
        lock (Managers) HandOffs.Add((vmId, file));
    }

    public static LinuxKitManager For(LinuxKitTask task, LinuxKitManagerOptions options)
    {
        var key = $"{task.StateDirectory}|{options.Hypervisor}";
        lock (Managers)
        {
            if (Managers.TryGetValue(key, out var existing)) return existing;
            if (Managers.Count == 0) AppDomain.CurrentDomain.ProcessExit += (_, _) => StopAll();
            // No task logs between builds: the manager's warnings go nowhere once this one ends.
            var created = task.CreateManager(options, new LinuxKitTask.BuildLog());
            Managers[key] = created;
            return created;
        }
    }

    private static void StopAll()
    {
        LinuxKitManager[] managers;
        lock (Managers)
        {
            managers = [.. Managers.Values];
            Managers.Clear();
        }
        foreach (var manager in managers) manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var (vmId, file) in HandOffs) Fixtures.HandOff.Clear(vmId, file);
    }
}
