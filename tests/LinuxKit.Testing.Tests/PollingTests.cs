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

    // The clock is advanced in steps until the wait ends; a step can land before the next
    // delay is registered, so the tests count checks and compare times, not steps.
    private static async Task<T> AdvanceUntilDoneAsync<T>(Task<T> waiting, FakeTimeProvider time)
    {
        for (var i = 0; i < 100 && !waiting.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(10);
        }
        return await waiting.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_condition_is_checked_at_each_interval_until_it_holds()
    {
        var time = new FakeTimeProvider();
        var checks = 0;

        var held = await AdvanceUntilDoneAsync(Polling.UntilAsync(() => ++checks == 3, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60), CancellationToken.None, time), time);

        Assert.True(held);
        Assert.Equal(3, checks);
        Assert.True(time.GetUtcNow() - time.Start >= TimeSpan.FromSeconds(2), "two intervals passed before the third check");
    }

    [Fact]
    public async Task A_condition_that_never_holds_returns_false_once_the_timeout_passed_on_the_clock()
    {
        var time = new FakeTimeProvider();
        var waiting = Polling.UntilAsync(() => false, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), CancellationToken.None, time);

        time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(waiting.IsCompleted); // the timeout has not passed on the clock

        Assert.False(await AdvanceUntilDoneAsync(waiting, time));
        Assert.True(time.GetUtcNow() - time.Start >= TimeSpan.FromSeconds(3));
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
