using System.Diagnostics;
using LinuxKit.Testing.Processes;

namespace LinuxKit.Testing.Tests.Processes;

public class ProcessIdentityTests
{
    [Fact]
    public void Own_process_is_alive()
    {
        var self = ProcessIdentity.Of(Environment.ProcessId);
        Assert.NotNull(self);
        Assert.True(self.Value.IsAlive());
    }

    [Fact]
    public void Same_pid_with_another_start_time_is_another_process()
    {
        var self = ProcessIdentity.Of(Environment.ProcessId)!.Value;
        var impostor = self with { StartTime = self.StartTime + "0" };
        Assert.False(impostor.IsAlive());
        Assert.False(impostor.Signal(UnixSignal.Term)); // never signalled: we are still running
    }

    [Fact]
    public async Task Exited_process_is_not_alive_and_is_not_signalled()
    {
        using var sleeper = Process.Start("sleep", "30");
        var identity = ProcessIdentity.Of(sleeper.Id)!.Value;
        Assert.True(identity.Signal(UnixSignal.Term));
        await sleeper.WaitForExitAsync();
        Assert.True(await identity.WaitForExitAsync(TimeSpan.FromSeconds(5), CancellationToken.None));
        Assert.False(identity.Signal(UnixSignal.Kill));
    }

    [Fact]
    public void Missing_pid_has_no_identity() => Assert.Null(ProcessIdentity.Of(int.MaxValue));
}
