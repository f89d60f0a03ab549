using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Waits until a booting VM runs a command over SSH, attempting as <see cref="ReadinessSchedule"/>
/// says: each SSH attempt is a handshake that runs <c>true</c>.
/// </summary>
/// <remarks>
/// The wait ends at once when the VM dies or the caller cancels, and at the boot timeout; the
/// error then says how far the guest got: nothing answered, no server listened, a server took
/// the connection but sent no banner, a banner came but no handshake worked, or the handshake
/// worked but the key was refused.
/// </remarks>
internal static class SshReadiness
{
    private static readonly TimeSpan HypervisorCheck = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Returns the first session that ran <c>true</c>; <paramref name="readinessCues"/> counts the
    /// console lines that say the guest may answer now (<see cref="Logs.ReadinessCues"/>). Throws <see cref="LinuxKitBootException"/>
    /// as soon as <paramref name="hypervisorExited"/> says the VM died or <paramref name="bootFailed"/>
    /// gives the line that says its boot failed, or when the timeout passes.
    /// </summary>
    public static async Task<ReadySession> WaitAsync(
        SshEndpoint endpoint,
        Func<bool> hypervisorExited,
        Func<string?> bootFailed,
        Func<string> consoleTail,
        Func<int>? readinessCues,
        TimeSpan timeout,
        string vmDescription,
        bool restored,
        CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var timeline = new StringBuilder();
        void Note(string step) => timeline.Append(CultureInfo.InvariantCulture, $"{clock.Elapsed.TotalSeconds:0.00} s {step}; ");
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(timeout);
        string? failure = null;
        var watching = WatchHypervisorAsync(() => hypervisorExited() || (failure = bootFailed()) is not null, stop);
        try
        {
            var result = await ReadinessSchedule.RunAsync<SshSession>(
                endpoint.Port, (patience, token) => AttemptAsync(endpoint, patience, token), timeout, stop.Token, Note, serverRunning: restored, cues: readinessCues).ConfigureAwait(false);
            if (result.Value is { } session)
                return new ReadySession(session, result.Banner ?? "", result.Connections, timeline.ToString().TrimEnd(' ', ';'));

            cancellationToken.ThrowIfCancellationRequested();
            if (failure is not null)
                throw new LinuxKitBootException($"{vmDescription} cannot boot: its console says \"{failure}\".", consoleTail());
            if (hypervisorExited())
                throw new LinuxKitBootException($"{vmDescription} stopped while booting, before it ran a command over SSH.", consoleTail());
            throw new LinuxKitBootException(
                $"{vmDescription} did not run a command over SSH on {endpoint.Host}:{endpoint.Port} within {timeout.TotalSeconds:0} s: " +
                Diagnose(result, endpoint) + $" ({result.Connections} connections tried.)",
                consoleTail(), exitCode: null, result.LastError);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await watching.ConfigureAwait(false);
        }
    }

    private static string Diagnose(ReadinessResult<SshSession> result, SshEndpoint endpoint)
    {
        if (result.Banner is null && !result.NetworkAnswered)
            return "nothing answered on the port: the guest's network never came up (no connection was answered or refused by the guest). " +
                   "Check the console below: did the kernel boot, and does the image bring up eth0 (DHCP)?";
        if (result.Banner is null && result.SilentConnection)
            return "a server accepted the connection but sent no SSH banner before the time ran out: the guest is up and its SSH server is very slow. Raise the boot timeout.";
        if (result.Banner is null)
            return "nothing answered on the port: the guest's network is up (it refused the connections), but no SSH server listened on its port 22. " +
                   "Check that the image starts an SSH server (LinuxKit's sshd package) and that it did not fail (see the console below).";
        if (result.LastError is SshAuthenticationException)
            return $"the SSH handshake with '{result.Banner}' worked, but the server refused the key {endpoint.PrivateKeyPath} for user '{endpoint.User}' ({result.LastError.Message}). " +
                   "Check that the image installs the keys from /run/config/ssh/authorized_keys (LinuxKit's metadata package) for that user, or pass a key it accepts (RunOptions.SshKey, RunOptions.SshUser).";
        return $"an SSH server answered ('{result.Banner}'), but the SSH handshake failed: {result.LastError?.Message ?? "no attempt finished in time"}.";
    }

    // Cancels the wait as soon as the hypervisor is gone or the boot failed: nothing the guest
    // could still send matters then.
    private static async Task WatchHypervisorAsync(Func<bool> hypervisorExited, CancellationTokenSource stop)
    {
        try
        {
            await Polling.UntilAsync(hypervisorExited, HypervisorCheck, Timeout.InfiniteTimeSpan, stop.Token).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The wait ended first.
        }
    }

    // One handshake that runs 'true'. Whether the server's banner came tells a refusal (no
    // banner, the connection closed) from a server that answered and then failed us.
    private static async Task<Attempt<SshSession>> AttemptAsync(SshEndpoint endpoint, TimeSpan patience, CancellationToken stop)
    {
        var serverVersion = new StrongBox<string?>();
        SshSession? session = null;
        try
        {
            session = await SshSession.ConnectAsync(endpoint, pinnedFingerprint: null, patience, stop, serverVersion).ConfigureAwait(false);
            using var commandTimeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            commandTimeout.CancelAfter(patience);
            var result = await session.RunAsync(ShellCommand.FromArguments(["true"]), commandTimeout.Token).ConfigureAwait(false);
            if (result.ExitCode == 0) return new Attempt<SshSession>(AttemptOutcome.Ready, serverVersion.Value, session);
            session.Dispose();
            return new Attempt<SshSession>(AttemptOutcome.Answered, serverVersion.Value, Error: new LinuxKitException($"'true' exited with {result.ExitCode}: {result.Stderr}"));
        }
        catch (Exception e) when (e is SshException or SocketException or IOException or TimeoutException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            session?.Dispose();
            var timedOut = e is OperationCanceledException or SshOperationTimeoutException or TimeoutException;
            if (serverVersion.Value is not null)
                return new Attempt<SshSession>(AttemptOutcome.Answered, serverVersion.Value, Error: timedOut && stop.IsCancellationRequested ? null : e);
            return new Attempt<SshSession>(timedOut ? AttemptOutcome.Silent : AttemptOutcome.Refused);
        }
    }
}
