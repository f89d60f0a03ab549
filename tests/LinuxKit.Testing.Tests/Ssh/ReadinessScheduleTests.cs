using System.Net;
using System.Net.Sockets;
using System.Text;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

/// <summary>
/// The readiness schedule against a loopback server that plays a booting guest behind QEMU's
/// user network: connections accepted and left silent (the guest's network is not up), then
/// closed at once (up, nothing listens), then answered slowly (OpenSSH forking before its
/// banner). The handshake is stood in for by reading the banner, as SSH.NET does first.
/// </summary>
public sealed class ReadinessScheduleTests
{
    // Like an SSH.NET connect: a banner is a success here, an end of stream a refusal, and
    // the connection is waited on for as long as it is given.
    private static async Task<Attempt<string>> BannerHandshakeAsync(int port, TimeSpan patience, CancellationToken stop)
    {
        var (outcome, banner) = await ReadinessSchedule.ProbeAsync(port, patience, stop);
        return outcome == AttemptOutcome.Answered ? new Attempt<string>(AttemptOutcome.Ready, banner, banner) : new Attempt<string>(outcome);
    }

    // The wait as the readiness runs it: stopped at its deadline.
    private static async Task<ReadinessResult<string>> RunAsync(int port, TimeSpan limit)
    {
        using var stop = new CancellationTokenSource(limit);
        return await ReadinessSchedule.RunAsync<string>(port, (patience, token) => BannerHandshakeAsync(port, patience, token), limit, stop.Token);
    }

    private sealed class BootingGuest : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly DateTime _start = DateTime.UtcNow;
        private readonly Task _serving;
        private int _open;
        private int _connections;
        private int _maxOpen;

        public BootingGuest(TimeSpan networkUpAt, TimeSpan serverUpAt, TimeSpan bannerDelay)
        {
            _listener.Start();
            _serving = ServeAsync(networkUpAt, serverUpAt, bannerDelay);
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Connections => Volatile.Read(ref _connections);

        public int MaxOpenAtOnce => Volatile.Read(ref _maxOpen);

        private async Task ServeAsync(TimeSpan networkUpAt, TimeSpan serverUpAt, TimeSpan bannerDelay)
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    // The prober closes one connection before it opens the next, but this side
                    // may accept the next before it has read the previous one's end: let that settle.
                    var settle = DateTime.UtcNow + TimeSpan.FromMilliseconds(100);
                    while (Volatile.Read(ref _open) > 0 && DateTime.UtcNow < settle) await Task.Delay(5);
                    Interlocked.Increment(ref _connections);
                    var open = Interlocked.Increment(ref _open);
                    int max;
                    while (open > (max = Volatile.Read(ref _maxOpen)) && Interlocked.CompareExchange(ref _maxOpen, open, max) != max) { }
                    _ = HandleAsync(client, DateTime.UtcNow - _start, networkUpAt, serverUpAt, bannerDelay);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }

        private async Task HandleAsync(TcpClient client, TimeSpan at, TimeSpan networkUpAt, TimeSpan serverUpAt, TimeSpan bannerDelay)
        {
            using (client)
            {
                try
                {
                    var stream = client.GetStream();
                    if (at < networkUpAt)
                    {
                        // Silent until the prober gives up (its end of stream) or the test ends.
                        _ = await stream.ReadAsync(new byte[1], _stop.Token);
                    }
                    else if (at >= serverUpAt)
                    {
                        await Task.Delay(bannerDelay, _stop.Token);
                        await stream.WriteAsync(Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), _stop.Token);
                        _ = await stream.ReadAsync(new byte[1], _stop.Token);
                    }
                    // else: the guest is up and nothing listens: closed at once.
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
                {
                }
                finally
                {
                    Interlocked.Decrement(ref _open);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serving;
            _stop.Dispose();
        }
    }

    [Fact]
    public async Task A_ten_second_boot_takes_at_most_20_connections_one_at_a_time_and_waits_for_a_slow_banner()
    {
        // Network up at 3 s, the SSH server at 8.5 s, forking 1.5 s before each banner: a
        // probe that gave up on the banner after a fraction of a second would never see it.
        await using var guest = new BootingGuest(TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(8.5), TimeSpan.FromSeconds(1.5));
        var result = await RunAsync(guest.Port, TimeSpan.FromSeconds(60));

        Assert.Equal("SSH-2.0-OpenSSH_9.2p1 Debian-2", result.Value);
        Assert.Equal("SSH-2.0-OpenSSH_9.2p1 Debian-2", result.Banner);
        Assert.True(result.NetworkAnswered);
        Assert.Equal(guest.Connections, result.Connections);
        Assert.InRange(result.Connections, 3, 20);
        Assert.Equal(1, guest.MaxOpenAtOnce);
    }

    [Fact]
    public async Task A_console_cue_replaces_a_silent_probe_at_once_instead_of_after_its_patience()
    {
        // The network and the server come up at 1.2 s and the console says so at 1.3 s. The probe
        // opened at 1.0 s stays silent (QEMU holds its SYN); on the timer alone it would be given
        // up at 2.0 s. The schedule's note says which ended it, so no deadline has to race the
        // timer on a busy host.
        await using var guest = new BootingGuest(TimeSpan.FromSeconds(1.2), TimeSpan.FromSeconds(1.2), TimeSpan.Zero);
        var started = DateTime.UtcNow;
        var notes = new List<string>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        var result = await ReadinessSchedule.RunAsync<string>(
            guest.Port, (patience, token) => BannerHandshakeAsync(guest.Port, patience, token), TimeSpan.FromSeconds(30), stop.Token,
            note: n => { lock (notes) notes.Add(n); },
            cues: () => DateTime.UtcNow - started >= TimeSpan.FromSeconds(1.3) ? 1 : 0);

        Assert.Equal("SSH-2.0-OpenSSH_9.2p1 Debian-2", result.Value);
        Assert.Contains(notes, n => n.EndsWith("Silent (replaced at a console cue)", StringComparison.Ordinal));
        Assert.Equal(1, guest.MaxOpenAtOnce);
    }

    [Fact]
    public async Task A_console_cue_ends_the_wait_before_the_next_attempt()
    {
        var started = DateTime.UtcNow;
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var waited = await ReadinessSchedule.WaitUnlessCuedAsync(
            TimeSpan.FromSeconds(20), () => DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.2) ? 1 : 0, mark: 0, TimeProvider.System, CancellationToken.None);

        Assert.True(waited);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.2), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_silent_probe_ends_at_a_cue_and_says_so_while_an_unchanged_count_keeps_it_open()
    {
        await using var guest = new BootingGuest(TimeSpan.MaxValue, TimeSpan.MaxValue, TimeSpan.Zero);
        var started = DateTime.UtcNow;
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var cued = await ReadinessSchedule.ProbeUntilCueAsync(
            guest.Port, TimeSpan.FromSeconds(20), () => DateTime.UtcNow - started >= TimeSpan.FromSeconds(0.2) ? 1 : 0, mark: 0, TimeProvider.System, CancellationToken.None);
        var cueTook = clock.Elapsed;
        clock.Restart();
        var uncued = await ReadinessSchedule.ProbeUntilCueAsync(guest.Port, TimeSpan.FromSeconds(1), () => 1, mark: 1, TimeProvider.System, CancellationToken.None);

        Assert.Equal((AttemptOutcome.Silent, null, true), cued);
        Assert.InRange(cueTook, TimeSpan.FromSeconds(0.2), TimeSpan.FromSeconds(10));
        Assert.Equal((AttemptOutcome.Silent, null, false), uncued);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10)); // its whole patience
    }

    [Fact]
    public async Task Console_cues_that_came_before_a_probe_opened_do_not_cut_it_short()
    {
        // The same cue count all along, however many: the probes keep their patience, so a
        // guest whose network never comes up sees one probe a second.
        await using var guest = new BootingGuest(TimeSpan.MaxValue, TimeSpan.MaxValue, TimeSpan.Zero);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2.5));

        var result = await ReadinessSchedule.RunAsync<string>(
            guest.Port, (patience, token) => BannerHandshakeAsync(guest.Port, patience, token), TimeSpan.FromSeconds(2.5), stop.Token,
            cues: () => 3);

        Assert.InRange(result.Connections, 2, 3);
        Assert.Equal(1, guest.MaxOpenAtOnce);
    }

    // The host's time of day jumping hours ahead and back on every look (NTP stepping a
    // clock, a suspended laptop, an operator's `date -s`); its monotonic timestamps run true.
    private sealed class JumpingClock : TimeProvider
    {
        private int _looks;

        public override DateTimeOffset GetUtcNow() =>
            base.GetUtcNow() + TimeSpan.FromHours(Interlocked.Increment(ref _looks) % 2 == 0 ? 3 : -3);
    }

    [Fact]
    public async Task A_host_clock_that_jumps_during_readiness_moves_no_deadline_and_gives_every_attempt_the_time_left()
    {
        await using var guest = new BootingGuest(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(0.5));
        var limit = TimeSpan.FromSeconds(30);
        var patiences = new List<TimeSpan>();
        using var stop = new CancellationTokenSource(limit);

        var result = await ReadinessSchedule.RunAsync<string>(
            guest.Port,
            (patience, token) =>
            {
                lock (patiences) patiences.Add(patience);
                return BannerHandshakeAsync(guest.Port, patience, token);
            },
            limit, stop.Token, time: new JumpingClock());

        Assert.Equal("SSH-2.0-OpenSSH_9.2p1 Debian-2", result.Value);
        Assert.NotEmpty(patiences);
        Assert.All(patiences, p => Assert.InRange(p, TimeSpan.FromSeconds(20), limit));
    }

    [Fact]
    public async Task A_guest_whose_network_never_answers_is_reported_so_when_the_wait_is_stopped()
    {
        await using var guest = new BootingGuest(TimeSpan.MaxValue, TimeSpan.MaxValue, TimeSpan.Zero);
        var result = await RunAsync(guest.Port, TimeSpan.FromSeconds(2.5));

        Assert.Null(result.Value);
        Assert.Null(result.Banner);
        Assert.False(result.NetworkAnswered);
        Assert.False(result.SilentConnection);
        Assert.Equal(1, guest.MaxOpenAtOnce);
    }

    [Fact]
    public async Task A_server_that_accepts_but_never_sends_a_banner_is_reported_as_a_silent_connection()
    {
        // Up and refusing for 0.5 s, then a server that never sends its banner.
        await using var guest = new BootingGuest(TimeSpan.Zero, TimeSpan.FromSeconds(0.5), TimeSpan.FromHours(1));
        var result = await RunAsync(guest.Port, TimeSpan.FromSeconds(3));

        Assert.Null(result.Banner);
        Assert.True(result.NetworkAnswered);
        Assert.True(result.SilentConnection);
        Assert.Equal(1, guest.MaxOpenAtOnce);
    }

    [Fact]
    public async Task A_handshake_the_deadline_cuts_short_is_not_taken_for_a_silent_server()
    {
        // Up and refusing all along; on a busy host the refusal of the attempt under way at the
        // deadline has not come yet when the deadline ends it.
        await using var guest = new BootingGuest(TimeSpan.Zero, TimeSpan.FromHours(1), TimeSpan.Zero);
        var limit = TimeSpan.FromSeconds(2);
        using var stop = new CancellationTokenSource(limit);
        var result = await ReadinessSchedule.RunAsync<string>(
            guest.Port,
            async (patience, token) =>
            {
                if (patience > TimeSpan.FromSeconds(0.6)) return await BannerHandshakeAsync(guest.Port, patience, token);
                await Task.Delay(Timeout.InfiniteTimeSpan, token).ContinueWith(_ => { }, TaskScheduler.Default);
                return new Attempt<string>(AttemptOutcome.Silent);
            },
            limit,
            stop.Token);

        Assert.Null(result.Banner);
        Assert.True(result.NetworkAnswered);
        Assert.False(result.SilentConnection);
    }

    [Fact]
    public async Task A_port_where_nothing_listens_on_the_host_is_retried_until_stopped()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        var result = await RunAsync(port, TimeSpan.FromSeconds(1.5));

        Assert.Null(result.Banner);
        Assert.False(result.NetworkAnswered);
        Assert.InRange(result.Connections, 2, 10); // backing off, not spinning
    }
}
