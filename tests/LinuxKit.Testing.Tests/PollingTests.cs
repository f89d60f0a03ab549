using Microsoft.Extensions.Time.Testing;

namespace LinuxKit.Testing.Tests;

public class PollingTests
{
    [Fact]
    public async Task A_condition_that_holds_returns_true_at_once_without_waiting()
    {
        var time = new FakeTimeProvider();

        Assert.True(await Polling.UntilAsync(() => true, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), CancellationToken.None, time));
    }

    [Fact]
    public async Task A_condition_is_checked_at_each_interval_until_it_holds()
    {
        var time = new FakeTimeProvider();
        var checks = 0;

        var waiting = Polling.UntilAsync(() => ++checks == 3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10), CancellationToken.None, time);
        for (var i = 0; i < 2 && !waiting.IsCompleted; i++)
        {
            Assert.False(waiting.IsCompleted);
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Yield();
        }

        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(3, checks);
    }

    [Fact]
    public async Task A_condition_that_never_holds_returns_false_once_the_timeout_passed_on_the_clock()
    {
        var time = new FakeTimeProvider();

        var waiting = Polling.UntilAsync(() => false, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), CancellationToken.None, time);
        for (var i = 0; i < 10 && !waiting.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10);
        }

        Assert.False(await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.InRange(time.GetUtcNow() - time.Start, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(4));
    }

    [Fact]
    public async Task Cancelling_ends_the_wait_with_operation_cancelled()
    {
        using var cancel = new CancellationTokenSource();
        var waiting = Polling.UntilAsync(() => false, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan, cancel.Token, new FakeTimeProvider());

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
    }
}
