using System.Net;
using System.Net.Sockets;
using System.Text;

namespace LinuxKit.Testing.Ssh;

/// <summary>What waiting for a booting guest's SSH banner saw.</summary>
/// <param name="Banner">The server's identification line ("SSH-2.0-..."), or null when none came.</param>
/// <param name="NetworkAnswered">True once the guest answered a connection at all (with a refusal or data).</param>
/// <param name="SilentConnection">True when the last connection was open and silent when the wait ended: a server accepted it but sent no banner in time.</param>
/// <param name="Connections">How many connections the wait made.</param>
internal sealed record BannerWaitResult(string? Banner, bool NetworkAnswered, bool SilentConnection, int Connections);

/// <summary>
/// Waits for a booting guest's SSH server to send its banner, with one connection open at a time.
/// </summary>
/// <remarks>
/// Under QEMU user networking the host side accepts a connection at once, so a connect proves
/// nothing. Until the guest's network is up its SYN waits in QEMU, and connections QEMU queued
/// reach the guest together when it comes up, where a burst makes SSH servers turn clients away.
/// So until the guest answers anything, each probe waits a short while (1 s, longer as the boot
/// drags on) and is replaced. Once the guest answered (a refusal: nothing listens yet), an open
/// connection means a server took it: OpenSSH forks a process per connection before its banner
/// (well over a second on a busy guest under TCG), so the probe waits for the banner as long as
/// the deadline allows; it is never given up and replaced, which would feed sshd's MaxStartups
/// throttling. Between refusals the probes back off from 0.1 s to 1 s.
/// </remarks>
internal static class SshBannerWait
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MinSilentProbe = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxSilentProbe = TimeSpan.FromSeconds(4);
    private const int MaxBannerLength = 255; // RFC 4253: the identification line, CR LF included

    private enum Outcome { Banner, Refused, Silent, NotListening }

    /// <summary>
    /// Probes 127.0.0.1:<paramref name="port"/> until a banner arrives or <paramref name="stop"/>
    /// is cancelled (the deadline passed, the VM died or the caller cancelled); never throws for those.
    /// </summary>
    public static async Task<BannerWaitResult> WaitAsync(int port, CancellationToken stop)
    {
        var started = DateTime.UtcNow;
        var networkAnswered = false;
        var connections = 0;
        var delay = FirstRetryDelay;
        while (!stop.IsCancellationRequested)
        {
            connections++;
            // Until the guest has answered, a probe's patience grows with the boot's length: a
            // guest whose server listens as soon as its network is up must get a banner out even
            // when forking takes longer than a second.
            TimeSpan? patience = networkAnswered ? null : Clamp((DateTime.UtcNow - started) / 4, MinSilentProbe, MaxSilentProbe);
            var (outcome, banner) = await ProbeAsync(port, patience, stop).ConfigureAwait(false);
            switch (outcome)
            {
                case Outcome.Banner:
                    return new BannerWaitResult(banner, NetworkAnswered: true, SilentConnection: false, connections);
                case Outcome.Silent when networkAnswered || stop.IsCancellationRequested:
                    return new BannerWaitResult(null, networkAnswered, SilentConnection: networkAnswered, connections);
                case Outcome.Silent:
                    continue; // the guest's network is not up yet: a fresh probe at once
                case Outcome.Refused:
                    networkAnswered = true;
                    break;
                case Outcome.NotListening:
                    break; // nothing listens on the host side (a hypervisor still starting its forwarder)
            }
            try
            {
                await Task.Delay(delay, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            delay = Clamp(delay * 1.5, FirstRetryDelay, MaxRetryDelay);
        }
        return new BannerWaitResult(null, networkAnswered, SilentConnection: false, connections);
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    // One connection: the banner line, a refusal (reset or end of stream: the guest answered but
    // nothing listens; or something that is not SSH answered), or silence until the patience or
    // the stop ran out.
    private static async Task<(Outcome, string?)> ProbeAsync(int port, TimeSpan? patience, CancellationToken stop)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(stop);
        if (patience is { } p) limit.CancelAfter(p);
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port, limit.Token).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            return (Outcome.NotListening, null);
        }
        catch (OperationCanceledException)
        {
            return (Outcome.Silent, null);
        }
        try
        {
            var stream = client.GetStream();
            var line = new List<byte>();
            var buffer = new byte[MaxBannerLength];
            while (true)
            {
                var n = await stream.ReadAsync(buffer, limit.Token).ConfigureAwait(false);
                if (n == 0) return (Outcome.Refused, null);
                line.AddRange(buffer.AsSpan(0, n));
                if (line.Count >= 4 && !line.Take(4).SequenceEqual("SSH-"u8.ToArray()))
                    return (Outcome.Refused, null);
                var end = line.IndexOf((byte)'\n');
                if (end >= 0 || line.Count >= MaxBannerLength)
                    return (Outcome.Banner, Encoding.ASCII.GetString([.. line.Take(end >= 0 ? end : line.Count)]).TrimEnd('\r'));
            }
        }
        catch (OperationCanceledException)
        {
            return (Outcome.Silent, null);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            return (Outcome.Refused, null);
        }
    }
}
