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
    public async Task A_child_that_ended_but_was_never_reaped_is_not_alive()
    {
        // sh starts a short child, then becomes a sleep that never reaps it: once it ends, a zombie.
        using var parent = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 0.2 & echo $!; exec sleep 30"]) { RedirectStandardOutput = true })!;
        try
        {
            var childPid = int.Parse(await parent.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)) ?? "", System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(await Polling.UntilAsync(() => File.ReadAllText($"/proc/{childPid}/stat").Contains(") Z ", StringComparison.Ordinal), TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(10), CancellationToken.None));

            var child = ProcessIdentity.Of(childPid);
            Assert.NotNull(child);
            Assert.False(child.Value.IsAlive());
            Assert.False(child.Value.Signal(UnixSignal.Kill));
        }
        finally
        {
            parent.Kill();
        }
    }

    [Fact]
    public void Missing_pid_has_no_identity() => Assert.Null(ProcessIdentity.Of(int.MaxValue));
}
