using System.Diagnostics;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Processes;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing.Tests.Hypervisors;

/// <summary>
/// The stop escalation over real processes standing in for a hypervisor: a request that works, a
/// request that cannot be sent, and a process that ignores SIGTERM.
/// </summary>
public sealed class StopEscalationTests : IDisposable
{
    private readonly List<Process> _processes = [];

    // The script says "ready" once it is set up (its traps set): only then is it signalled.
    private ProcessIdentity Start(string script)
    {
        var process = Process.Start(new ProcessStartInfo("sh", ["-c", script]) { RedirectStandardOutput = true })!;
        _processes.Add(process);
        var ready = process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)).GetAwaiter().GetResult();
        Assert.Equal("ready", ready);
        return ProcessIdentity.Of(process.Id) ?? throw new InvalidOperationException("the stand-in exited at once");
    }

    [Fact]
    public async Task A_request_the_process_obeys_ends_it_with_the_requests_exit_code()
    {
        var process = Start("echo ready; exec sleep 60");

        var exitCode = await StopEscalation.RunAsync(
            _ => { process.Signal(UnixSignal.Kill); return Task.FromResult(true); }, 137, TimeSpan.FromSeconds(10), process, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(137, exitCode);
        Assert.False(process.IsAlive());
    }

    [Fact]
    public async Task A_request_that_cannot_be_sent_goes_straight_to_sigterm()
    {
        var process = Start("echo ready; exec sleep 60");
        var clock = Stopwatch.StartNew();

        var exitCode = await StopEscalation.RunAsync(_ => Task.FromResult(false), 0, TimeSpan.FromSeconds(30), process, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(143, exitCode);
        Assert.False(process.IsAlive());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), "the request's wait was not skipped");
    }

    [Fact]
    public async Task A_control_channel_that_never_answers_does_not_hold_the_stop()
    {
        var process = Start("echo ready; exec sleep 60");

        var exitCode = await StopEscalation.RunAsync(
            async token => { await Task.Delay(Timeout.Infinite, token); return true; }, 0, TimeSpan.FromSeconds(30), process, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(143, exitCode);
        Assert.False(process.IsAlive());
    }

    [Fact]
    public async Task A_process_that_ignores_sigterm_is_killed()
    {
        var process = Start("trap '' TERM; echo ready; while :; do sleep 1; done");

        var exitCode = await StopEscalation.RunAsync(_ => Task.FromResult(false), 0, TimeSpan.FromSeconds(30), process, NullLogger.Instance, CancellationToken.None);

        Assert.Equal(137, exitCode);
        Assert.False(process.IsAlive());
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.Dispose();
        }
    }
}
