using System.Net.Sockets;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Waits until a booting VM runs a command over SSH. Under QEMU user networking the host side
/// accepts TCP long before the guest listens, and an attempt made too early stalls while the
/// guest-side SYN backs off; so attempts are short, fresh and overlapping, and the first one
/// that runs a command wins. That notices readiness within a fraction of a second of it
/// happening, where one patient attempt could hang for seconds.
/// </summary>
internal static class SshReadiness
{
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Cadence = TimeSpan.FromMilliseconds(100);
    private const int MaxAttemptsInFlight = 4;

    /// <summary>
    /// Returns the first session that ran <c>true</c>. Throws <see cref="LinuxKitBootException"/>
    /// as soon as <paramref name="hypervisorExited"/> says the VM died, or when the timeout passes.
    /// </summary>
    public static async Task<SshSession> WaitAsync(
        SshEndpoint endpoint,
        Func<bool> hypervisorExited,
        Func<string> consoleTail,
        TimeSpan timeout,
        string vmDescription,
        CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var deadline = DateTime.UtcNow + timeout;
        var attempts = new List<Task<(SshSession? Session, Exception? Error)>>();
        Exception? lastError = null;
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (hypervisorExited())
                    throw new LinuxKitBootException($"{vmDescription} stopped while booting, before its SSH server answered.", consoleTail());
                if (DateTime.UtcNow >= deadline)
                {
                    throw new LinuxKitBootException(
                        $"{vmDescription} did not answer over SSH on 127.0.0.1:{endpoint.Port} within {timeout.TotalSeconds:0} s " +
                        $"(last error: {lastError?.Message ?? "none"}). Raise the boot timeout, or check that the image starts an SSH server that accepts keys from /run/config/ssh/authorized_keys.",
                        consoleTail(), exitCode: null, lastError);
                }
                if (attempts.Count < MaxAttemptsInFlight) attempts.Add(AttemptAsync(endpoint, stop.Token));

                await Task.WhenAny([.. attempts, Task.Delay(Cadence, cancellationToken)]);
                foreach (var done in attempts.Where(a => a.IsCompleted).ToList())
                {
                    attempts.Remove(done);
                    var (session, error) = done.Result;
                    if (session is not null) return session;
                    lastError = error ?? lastError;
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var pending in attempts)
            {
                // A losing attempt that connected anyway is closed; the winner was removed above.
                _ = pending.ContinueWith(t => t.Result.Session?.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);
            }
        }
    }

    private static async Task<(SshSession? Session, Exception? Error)> AttemptAsync(SshEndpoint endpoint, CancellationToken cancellationToken)
    {
        SshSession? session = null;
        try
        {
            session = await SshSession.ConnectAsync(endpoint, pinnedFingerprint: null, AttemptTimeout, cancellationToken);
            using var attemptTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attemptTimeout.CancelAfter(AttemptTimeout);
            var result = await session.RunAsync("true", attemptTimeout.Token);
            if (result.ExitCode == 0) return (session, null);
            session.Dispose();
            return (null, new LinuxKitException($"'true' exited with {result.ExitCode}: {result.Stderr}"));
        }
        catch (Exception e) when (e is SshException or SocketException or IOException or OperationCanceledException or TimeoutException or ObjectDisposedException or InvalidOperationException)
        {
            session?.Dispose();
            return (null, e);
        }
    }
}
