using System.Net;
using System.Net.Sockets;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Waits until a booting VM runs a command over SSH. Under QEMU user networking the host side
/// accepts TCP long before the guest listens, and a connection made while the guest's network
/// is down stalls for seconds as the guest-side SYN backs off. So readiness is watched in two
/// steps: short-lived TCP probes (0.4 s each, a new one every 100 ms, at most four at once)
/// wait for the SSH server's banner, and only then does one SSH handshake run a command.
/// A probe costs the guest little; a crowd of handshakes would compete with it for its CPU
/// (measured: 16 overlapping attempts made boots slower than a plain ssh poll). Probes closed
/// while the guest's network was down are still delivered by QEMU a few seconds later, after
/// the VM is ready; the manager's SSH connects retry through that short burst.
/// </summary>
internal static class SshReadiness
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(0.4);
    private static readonly TimeSpan Cadence = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private const int MaxProbesInFlight = 4;

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
        var probes = new List<Task<bool>>();
        try
        {
            while (DateTime.UtcNow < deadline && !hypervisorExited())
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (probes.Count < MaxProbesInFlight) probes.Add(ProbeAsync(port, stop.Token));
                await Task.WhenAny([.. probes, Task.Delay(Cadence, cancellationToken)]);
                foreach (var done in probes.Where(p => p.IsCompleted).ToList())
                {
                    probes.Remove(done);
                    if (done.Result) return true;
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

    private static async Task<bool> ProbeAsync(int port, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
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
                if (n == 0) return false;
                read += n;
            }
            return "SSH-"u8.SequenceEqual(banner);
        }
        catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
        {
            return false;
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
