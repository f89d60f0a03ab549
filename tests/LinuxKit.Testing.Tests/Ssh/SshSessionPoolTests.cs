using System.Net;
using System.Net.Sockets;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

/// <summary>
/// The pool's connect retries, against a local port that accepts connections and drops them
/// before any SSH banner (what QEMU's user network does with connections queued during a boot),
/// on a clock whose delays pass at once.
/// </summary>
public sealed class SshSessionPoolTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-pool-");
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private int _accepted;

    public SshSessionPoolTests()
    {
        _listener.Start();
        _ = DropEveryConnectionAsync();
    }

    private async Task DropEveryConnectionAsync()
    {
        try
        {
            while (true)
            {
                using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                Interlocked.Increment(ref _accepted);
                client.Client.Close();
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private GuestConnection Guest(SshSessionPool pool)
    {
        var key = Path.Combine(_dir.FullName, "id");
        if (!File.Exists(key)) SshKeyPair.Generate(key, "pool-test");
        var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        return pool.For("vm-1", new SshEndpoint("127.0.0.1", port, "root", key), pinnedFingerprint: null);
    }

    [Fact]
    public async Task A_connection_dropped_before_the_banner_is_retried_six_times_then_reported_with_the_vm_and_port()
    {
        using var pool = new SshSessionPool(new InstantDelays());
        var guest = Guest(pool);

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => guest.UseAsync(_ => Task.FromResult(0), CancellationToken.None));

        Assert.Equal(6, Volatile.Read(ref _accepted));
        Assert.StartsWith($"Cannot connect to VM vm-1 over SSH on 127.0.0.1:{guest.Endpoint.Port}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failed_connect_is_not_kept_so_the_next_call_connects_again()
    {
        using var pool = new SshSessionPool(new InstantDelays());
        var guest = Guest(pool);
        await Assert.ThrowsAsync<LinuxKitException>(() => guest.UseAsync(_ => Task.FromResult(0), CancellationToken.None));

        await Assert.ThrowsAsync<LinuxKitException>(() => guest.UseAsync(_ => Task.FromResult(0), CancellationToken.None));

        Assert.Equal(12, Volatile.Read(ref _accepted));
    }

    [Fact]
    public async Task A_caller_that_gives_up_is_released_at_once_while_the_connect_goes_on()
    {
        using var pool = new SshSessionPool(new InstantDelays());
        var guest = Guest(pool);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => guest.UseAsync(_ => Task.FromResult(0), cancelled.Token));
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _listener.Dispose();
        _stop.Dispose();
        _dir.Delete(recursive: true);
    }

    // Timers fire at once: the retry delays (0.25 s doubling) would otherwise make each case last 8 s.
    private sealed class InstantDelays : TimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            System.CreateTimer(callback, state, dueTime == Timeout.InfiniteTimeSpan ? dueTime : TimeSpan.Zero, period);
    }
}
