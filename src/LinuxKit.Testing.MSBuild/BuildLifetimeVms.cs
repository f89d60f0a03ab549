using Microsoft.Build.Framework;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// The manager of the VMs tied to one build (<see cref="StartLinuxKit.StopWhenBuildEnds"/>),
/// registered with MSBuild for the build's lifetime: MSBuild disposes it when the build ends,
/// also in a worker node it keeps for the next build, and that stops the VMs.
/// </summary>
internal sealed class BuildLifetimeVms : IDisposable
{
    private static readonly object Registration = new();

    private BuildLifetimeVms(LinuxKitManager manager, LinuxKitTask.BuildLog log)
    {
        Manager = manager;
        Log = log;
    }

    public LinuxKitManager Manager { get; }

    /// <summary>Where the manager logs: the task that is using it, or nowhere between tasks.</summary>
    public LinuxKitTask.BuildLog Log { get; }

    /// <summary>The build's manager for this state directory and these settings, made on first use.</summary>
    public static BuildLifetimeVms For(LinuxKitTask task, LinuxKitManagerOptions options)
    {
        var engine = task.BuildEngine as IBuildEngine4
            ?? throw new LinuxKitException("StopWhenBuildEnds needs MSBuild 15 or later (IBuildEngine4); run the build with `dotnet build`.");
        var key = $"{typeof(BuildLifetimeVms).FullName}|{task.StateDirectory}|{options.Hypervisor}";
        lock (Registration)
        {
            if (engine.GetRegisteredTaskObject(key, RegisteredTaskObjectLifetime.Build) is BuildLifetimeVms existing) return existing;
            var log = new LinuxKitTask.BuildLog();
            var created = new BuildLifetimeVms(task.CreateManager(options, log), log);
            engine.RegisterTaskObject(key, created, RegisteredTaskObjectLifetime.Build, allowEarlyCollection: false);
            return created;
        }
    }

    /// <summary>Stops the build's VMs; MSBuild calls this when the build ends.</summary>
    public void Dispose() => Manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
}
