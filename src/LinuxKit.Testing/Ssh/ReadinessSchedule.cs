using System.Net;
using System.Net.Sockets;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// When to connect to a booting guest's SSH port, with one connection open at a time.
/// </summary>
/// <remarks>
/// Under QEMU user networking the host side accepts a connection at once, so a connect proves
/// nothing. Until the guest's network is up its SYN waits in QEMU, and connections QEMU queued
/// reach the guest together when it comes up, where a burst makes SSH servers turn clients
/// away. So until the guest answers anything, a bare TCP probe waits a short while (1 s, longer
/// as the boot drags on) and is replaced. Once the guest answered, each attempt is the SSH
/// handshake itself (one fork in OpenSSH per attempt, not one for a probe and one for the
/// handshake), and an open connection is waited on for as long as the deadline allows: OpenSSH
/// forks a process per connection before its banner, well over a second on a busy guest, and
/// attempts that give up early and come back feed its MaxStartups throttling. Refusals are
/// cheap for the guest (its kernel answers) and are retried after 0.25 s growing to 0.5 s (at
/// most two connections a second); failed handshakes after 0.5 s growing to 4 s.
/// </remarks>
internal static class ReadinessSchedule
{
    private static readonly TimeSpan FirstRefusalDelay = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxRefusalDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan FirstFailureDelay = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaxFailureDelay = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan MinSilentProbe = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxSilentProbe = TimeSpan.FromSeconds(4);
    private const int MaxBannerLength = 255; // RFC 4253: the identification line, CR LF included

    /// <summary>
    /// Attempts until <paramref name="handshake"/> is ready or <paramref name="stop"/> is
    /// cancelled (the deadline passed, the VM died or the caller cancelled); never throws for those.
    /// </summary>
    /// <param name="port">The host port forwarded to the guest's SSH port.</param>
    /// <param name="handshake">One SSH attempt, given how long it may wait; it must end when the token is cancelled.</param>
    /// <param name="timeout">How long the wait may last (what is left of it is the attempts' patience), on the monotonic clock: a host clock that jumps moves no deadline.</param>
    /// <param name="stop">Ends the wait.</param>
    /// <param name="note">Told each attempt's outcome, for the boot's diagnostics.</param>
    /// <param name="serverRunning">
    /// The guest's server already runs (a VM restored from a snapshot taken while it answered):
    /// the first attempt is the handshake.
    /// </param>
    /// <param name="time">The clock; only its monotonic timestamps are read, never the time of day.</param>
    /// <param name="cues">
    /// How many times the guest's console said it may answer now (<see cref="Logs.ReadinessCues"/>):
    /// a silent probe opened before a new cue is replaced at once, since its connection waits
    /// in QEMU and would reach the guest only when QEMU sends its SYN again, seconds later.
    /// </param>
    public static async Task<ReadinessResult<T>> RunAsync<T>(
        int port,
        Func<TimeSpan, CancellationToken, Task<Attempt<T>>> handshake,
        TimeSpan timeout,
        CancellationToken stop,
        Action<string>? note = null,
        bool serverRunning = false,
        TimeProvider? time = null,
        Func<int>? cues = null)
    {
        time ??= TimeProvider.System;
        var started = time.GetTimestamp();
        var networkAnswered = serverRunning;
        var connections = 0;
        string? banner = null;
        Exception? lastError = null;
        var refusalDelay = FirstRefusalDelay;
        var failureDelay = FirstFailureDelay;
        while (!stop.IsCancellationRequested)
        {
            connections++;
            var cueMark = cues?.Invoke() ?? 0;
            TimeSpan delay;
            if (!networkAnswered)
            {
                // A guest whose server listens as soon as its network is up must get a banner out
                // even when forking takes longer than a second: patience grows with the boot.
                var patience = Clamp(time.GetElapsedTime(started) / 4, MinSilentProbe, MaxSilentProbe);
                var (outcome, probeBanner, cued) = await ProbeUntilCueAsync(port, patience, cues, cueMark, time, stop).ConfigureAwait(false);
                note?.Invoke($"probe {connections}: {outcome}{(cued ? " (replaced at a console cue)" : "")}");
                if (outcome == AttemptOutcome.Silent) continue; // the network is not up yet: a fresh probe at once
                if (outcome == AttemptOutcome.NotListening)
                {
                    delay = refusalDelay;
                }
                else
                {
                    networkAnswered = true;
                    banner ??= probeBanner;
                    if (probeBanner is not null) continue; // a server is up: the handshake at once
                    delay = refusalDelay;
                }
                refusalDelay = Grow(refusalDelay, FirstRefusalDelay, MaxRefusalDelay);
            }
            else
            {
                var attemptStarted = time.GetTimestamp();
                var attempt = await handshake(Clamp(timeout - time.GetElapsedTime(started), TimeSpan.Zero, timeout), stop).ConfigureAwait(false);
                note?.Invoke($"handshake {connections}: {attempt.Outcome}{(attempt.Error is null ? "" : $" ({attempt.Error.GetType().Name})")}");
                banner = attempt.Banner ?? banner;
                switch (attempt.Outcome)
                {
                    case AttemptOutcome.Ready:
                        return new ReadinessResult<T>(attempt.Value, banner, true, false, connections, null);
                    case AttemptOutcome.Silent when stop.IsCancellationRequested && time.GetElapsedTime(attemptStarted) < MinSilentProbe:
                        // Cut short by the end of the wait before a probe would call it silent:
                        // on a busy host the guest's refusal may just not have come yet.
                        return new ReadinessResult<T>(default, banner, true, SilentConnection: false, connections, lastError);
                    case AttemptOutcome.Silent:
                        return new ReadinessResult<T>(default, banner, true, SilentConnection: true, connections, lastError);
                    case AttemptOutcome.Answered:
                        lastError = attempt.Error ?? lastError;
                        delay = failureDelay;
                        failureDelay = Grow(failureDelay, FirstFailureDelay, MaxFailureDelay);
                        break;
                    default:
                        delay = refusalDelay;
                        refusalDelay = Grow(refusalDelay, FirstRefusalDelay, MaxRefusalDelay);
                        break;
                }
            }
            // A cue since this attempt began (a server that said it listens while we were
            // refused) ends the wait for the next attempt.
            if (!await WaitUnlessCuedAsync(delay, cues, cueMark, time, stop).ConfigureAwait(false)) break;
        }
        return new ReadinessResult<T>(default, banner, networkAnswered, SilentConnection: false, connections, lastError);
    }

    private static readonly TimeSpan CueCheck = TimeSpan.FromMilliseconds(50);

    // A probe that also ends, silent, when the cue count moves from its mark. A probe that got
    // a banner or a refusal has ended before: only a silent connection is replaced.
    internal static async Task<(AttemptOutcome Outcome, string? Banner, bool Cued)> ProbeUntilCueAsync(
        int port, TimeSpan patience, Func<int>? cues, int mark, TimeProvider time, CancellationToken stop)
    {
        using var probeStop = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var cue = WatchForCueAsync(cues, mark, time, probeStop.Token);
        var probing = ProbeAsync(port, patience, probeStop.Token);
        if (await Task.WhenAny(probing, cue).ConfigureAwait(false) == cue && await cue.ConfigureAwait(false))
            await probeStop.CancelAsync().ConfigureAwait(false);
        var (outcome, banner) = await probing.ConfigureAwait(false);
        await probeStop.CancelAsync().ConfigureAwait(false);
        var cued = await cue.ConfigureAwait(false);
        return (outcome, banner, cued && outcome == AttemptOutcome.Silent && !stop.IsCancellationRequested);
    }

    // Waits out the delay, or less when a cue comes; false when stopped.
    internal static async Task<bool> WaitUnlessCuedAsync(TimeSpan delay, Func<int>? cues, int mark, TimeProvider time, CancellationToken stop)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var cue = WatchForCueAsync(cues, mark, time, wait.Token);
        try
        {
            await Task.WhenAny(Task.Delay(delay, time, wait.Token), cue).ConfigureAwait(false);
        }
        finally
        {
            await wait.CancelAsync().ConfigureAwait(false);
            await cue.ConfigureAwait(false);
        }
        return !stop.IsCancellationRequested;
    }

    // True once the cue count moved from its mark; false when the token ends first, which is
    // the only way it ends without cues.
    private static async Task<bool> WatchForCueAsync(Func<int>? cues, int mark, TimeProvider time, CancellationToken token)
    {
        try
        {
            while (true)
            {
                await Task.Delay(cues is null ? Timeout.InfiniteTimeSpan : CueCheck, time, token).ConfigureAwait(false);
                if (cues!() != mark) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static TimeSpan Grow(TimeSpan delay, TimeSpan min, TimeSpan max) => Clamp(delay * 1.5, min, max);

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    /// <summary>
    /// One bare TCP connection, until the guest's network answers: its banner (Answered), a
    /// refusal (reset or end of stream; or something that is not SSH answered), or silence until
    /// the patience or the stop ran out.
    /// </summary>
    internal static async Task<(AttemptOutcome Outcome, string? Banner)> ProbeAsync(int port, TimeSpan? patience, CancellationToken stop)
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
            return (AttemptOutcome.NotListening, null);
        }
        catch (OperationCanceledException)
        {
            return (AttemptOutcome.Silent, null);
        }
        try
        {
            var stream = client.GetStream();
            var line = new List<byte>();
            var buffer = new byte[MaxBannerLength];
            while (true)
            {
                var n = await stream.ReadAsync(buffer, limit.Token).ConfigureAwait(false);
                if (n == 0) return (AttemptOutcome.Refused, null);
                line.AddRange(buffer.AsSpan(0, n));
                if (line.Count >= 4 && !line.Take(4).SequenceEqual("SSH-"u8.ToArray()))
                    return (AttemptOutcome.Refused, null);
                var end = line.IndexOf((byte)'\n');
                if (end >= 0 || line.Count >= MaxBannerLength)
                    return (AttemptOutcome.Answered, System.Text.Encoding.ASCII.GetString([.. line.Take(end >= 0 ? end : line.Count)]).TrimEnd('\r'));
            }
        }
        catch (OperationCanceledException)
        {
            return (AttemptOutcome.Silent, null);
        }
        catch (Exception e) when (e is SocketException or IOException)
        {
            return (AttemptOutcome.Refused, null);
        }
    }
}
