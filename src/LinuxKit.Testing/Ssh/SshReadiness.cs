using System.Net;
using System.Net.Sockets;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Waits until a booting VM runs a command over SSH, in two steps: TCP probes wait for the SSH
/// server's banner, then one SSH handshake runs a command (a crowd of handshakes would compete
/// with the booting guest for its CPU).
/// </summary>
/// <remarks>
/// Under QEMU user networking the host side accepts a connection at once and queues the SYN
/// for the guest until the guest's network is up; then every queued connection reaches the
/// guest together, even those the host side closed long ago. A burst like that right after
/// boot makes SSH servers turn clients away (dropbear and OpenSSH limit unauthenticated
/// connections), and a client connecting just then is turned away. So while the guest has not
/// answered at all, one probe at a time waits up to 1 s (QEMU delivers the queued ones a few
/// at a time, and few exist); once any answer shows the guest's network is up (a refusal: the
/// server is not listening yet), probes run every 100 ms, 0.4 s each, at most four at once,
/// and notice the server within a fraction of a second of it listening.
/// </remarks>
internal static class SshReadiness
{
    private static readonly TimeSpan QuietProbeTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(0.4);
    private static readonly TimeSpan Cadence = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private const int MaxProbesInFlight = 4;

    private enum ProbeOutcome { Banner, Refused, NoAnswer }

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
        var deadline = DateTime.UtcNow + timeout;
        Exception? lastError = null;
        while (true)
        {
            var remaining = deadline - DateTime.UtcNow;
            var bannerSeen = await WaitForBannerAsync(endpoint.Port, hypervisorExited, remaining, cancellationToken);
            if (hypervisorExited())
                throw new LinuxKitBootException($"{vmDescription} stopped while booting, before its SSH server answered.", consoleTail());
            if (!bannerSeen)
            {
                throw new LinuxKitBootException(
                    $"{vmDescription} did not answer over SSH on 127.0.0.1:{endpoint.Port} within {timeout.TotalSeconds:0} s " +
                    $"(last error: {lastError?.Message ?? "no SSH banner"}). Raise the boot timeout, or check that the image starts an SSH server that accepts keys from /run/config/ssh/authorized_keys.",
                    consoleTail(), exitCode: null, lastError);
            }
            var (session, error) = await AttemptAsync(endpoint, cancellationToken);
            if (session is not null) return session;
            lastError = error;
            await Task.Delay(Cadence, cancellationToken);
        }
    }

    // True once some probe read "SSH-" from the guest; false when the time is up or the VM died.
    private static async Task<bool> WaitForBannerAsync(int port, Func<bool> hypervisorExited, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var deadline = DateTime.UtcNow + timeout;
        var probes = new List<Task<ProbeOutcome>>();
        var networkUp = false;
        try
        {
            while (DateTime.UtcNow < deadline && !hypervisorExited())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (networkUp ? probes.Count < MaxProbesInFlight : probes.Count == 0)
                    probes.Add(ProbeAsync(port, networkUp ? ProbeTimeout : QuietProbeTimeout, stop.Token));
                await Task.WhenAny([.. probes, Task.Delay(Cadence, cancellationToken)]);
                foreach (var done in probes.Where(p => p.IsCompleted).ToList())
                {
                    probes.Remove(done);
                    if (done.Result == ProbeOutcome.Banner) return true;
                    if (done.Result == ProbeOutcome.Refused) networkUp = true;
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            return false;
        }
        finally
        {
            await stop.CancelAsync();
        }
    }

    private static async Task<ProbeOutcome> ProbeAsync(int port, TimeSpan probeTimeout, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(probeTimeout);
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, timeout.Token);
            var stream = client.GetStream();
            var banner = new byte[4];
            var read = 0;
            while (read < banner.Length)
            {
                var n = await stream.ReadAsync(banner.AsMemory(read), timeout.Token);
                if (n == 0) return ProbeOutcome.Refused; // the guest answered: nothing listens yet
                read += n;
            }
            return "SSH-"u8.SequenceEqual(banner) ? ProbeOutcome.Banner : ProbeOutcome.Refused;
        }
        catch (OperationCanceledException)
        {
            return ProbeOutcome.NoAnswer;
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            return ProbeOutcome.Refused;
        }
    }

    private static async Task<(SshSession? Session, Exception? Error)> AttemptAsync(SshEndpoint endpoint, CancellationToken cancellationToken)
    {
        SshSession? session = null;
        try
        {
            session = await SshSession.ConnectAsync(endpoint, pinnedFingerprint: null, HandshakeTimeout, cancellationToken);
            using var commandTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            commandTimeout.CancelAfter(HandshakeTimeout);
            var result = await session.RunAsync("true", commandTimeout.Token);
            if (result.ExitCode == 0) return (session, null);
            session.Dispose();
            return (null, new LinuxKitException($"'true' exited with {result.ExitCode}: {result.Stderr}"));
        }
        catch (Exception e) when (e is SshException or SocketException or IOException or TimeoutException or ObjectDisposedException or InvalidOperationException
                                      || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            session?.Dispose();
            return (null, e);
        }
    }
}
