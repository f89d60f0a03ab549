using System.Net.Sockets;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>A session that ran a command on a booted VM, and how many connections it took to get there.</summary>
internal sealed record ReadySession(SshSession Session, string Banner, int Connections);

/// <summary>
/// Waits until a booting VM runs a command over SSH: first its SSH server's banner (see
/// <see cref="SshBannerWait"/>), then one SSH handshake at a time that runs <c>true</c>.
/// </summary>
/// <remarks>
/// The wait ends at once when the VM dies or the caller cancels, and at the boot timeout; the
/// error then says how far the guest got: nothing answered, a banner came but no handshake
/// worked, or the handshake worked but the key was refused. Handshakes are retried with a
/// backoff (0.5 s to 4 s), so that a guest that installs its keys late, or an SSH server that
/// restarts, still lets the boot succeed without a stream of connections.
/// </remarks>
internal static class SshReadiness
{
    private static readonly TimeSpan HypervisorCheck = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan FirstHandshakeRetry = TimeSpan.FromSeconds(0.5);
    private static readonly TimeSpan MaxHandshakeRetry = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan MaxHandshakeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Returns the first session that ran <c>true</c>. Throws <see cref="LinuxKitBootException"/>
    /// as soon as <paramref name="hypervisorExited"/> says the VM died, or when the timeout passes.
    /// </summary>
    public static async Task<ReadySession> WaitAsync(
        SshEndpoint endpoint,
        Func<bool> hypervisorExited,
        Func<string> consoleTail,
        TimeSpan timeout,
        string vmDescription,
        CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        stop.CancelAfter(timeout);
        var watching = WatchHypervisorAsync(hypervisorExited, stop);
        try
        {
            var banner = await SshBannerWait.WaitAsync(endpoint.Port, stop.Token).ConfigureAwait(false);
            var connections = banner.Connections;
            Exception? lastError = null;
            var retry = FirstHandshakeRetry;
            while (banner.Banner is not null && !stop.IsCancellationRequested)
            {
                connections++;
                var remaining = deadline - DateTime.UtcNow;
                var (session, error) = await AttemptAsync(endpoint, remaining < MaxHandshakeTimeout ? remaining : MaxHandshakeTimeout, stop.Token).ConfigureAwait(false);
                if (session is not null) return new ReadySession(session, banner.Banner, connections);
                lastError = error ?? lastError;
                try
                {
                    await Task.Delay(retry, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                retry = retry * 2 < MaxHandshakeRetry ? retry * 2 : MaxHandshakeRetry;
            }

            cancellationToken.ThrowIfCancellationRequested();
            if (hypervisorExited())
                throw new LinuxKitBootException($"{vmDescription} stopped while booting, before it ran a command over SSH.", consoleTail());
            throw new LinuxKitBootException(
                $"{vmDescription} did not run a command over SSH on 127.0.0.1:{endpoint.Port} within {timeout.TotalSeconds:0} s: " +
                Diagnose(banner, lastError, endpoint) + $" ({connections} connections tried.)",
                consoleTail(), exitCode: null, lastError);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await watching.ConfigureAwait(false);
        }
    }

    private static string Diagnose(BannerWaitResult banner, Exception? lastError, SshEndpoint endpoint)
    {
        if (banner.Banner is null && !banner.NetworkAnswered)
            return "nothing answered on the port: the guest's network never came up (no connection was answered or refused by the guest). " +
                   "Check the console below: did the kernel boot, and does the image bring up eth0 (DHCP)?";
        if (banner.Banner is null && banner.SilentConnection)
            return "a server accepted the connection but sent no SSH banner before the time ran out: the guest is up and its SSH server is very slow. Raise the boot timeout.";
        if (banner.Banner is null)
            return "the guest's network answered, but no SSH server listened on its port 22. " +
                   "Check that the image starts an SSH server (LinuxKit's sshd package) and that it did not fail (see the console below).";
        if (lastError is SshAuthenticationException)
            return $"the SSH handshake with '{banner.Banner}' worked, but the server refused the key {endpoint.PrivateKeyPath} for user '{endpoint.User}' ({lastError.Message}). " +
                   "Check that the image installs the keys from /run/config/ssh/authorized_keys (LinuxKit's metadata package) for that user, or pass a key it accepts (RunOptions.SshKey, RunOptions.SshUser).";
        return $"an SSH server answered ('{banner.Banner}'), but the SSH handshake failed: {lastError?.Message ?? "no attempt finished in time"}.";
    }

    // Cancels the wait as soon as the hypervisor is gone: nothing the guest could still send matters then.
    private static async Task WatchHypervisorAsync(Func<bool> hypervisorExited, CancellationTokenSource stop)
    {
        try
        {
            while (!hypervisorExited()) await Task.Delay(HypervisorCheck, stop.Token).ConfigureAwait(false);
            await stop.CancelAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The wait ended first.
        }
    }

    private static async Task<(SshSession? Session, Exception? Error)> AttemptAsync(SshEndpoint endpoint, TimeSpan timeout, CancellationToken stop)
    {
        SshSession? session = null;
        try
        {
            session = await SshSession.ConnectAsync(endpoint, pinnedFingerprint: null, timeout, stop).ConfigureAwait(false);
            using var commandTimeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
            commandTimeout.CancelAfter(timeout);
            var result = await session.RunAsync("true", commandTimeout.Token).ConfigureAwait(false);
            if (result.ExitCode == 0) return (session, null);
            session.Dispose();
            return (null, new LinuxKitException($"'true' exited with {result.ExitCode}: {result.Stderr}"));
        }
        catch (Exception e) when (e is SshException or SocketException or IOException or TimeoutException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            session?.Dispose();
            return (null, e is OperationCanceledException ? null : e);
        }
    }
}
