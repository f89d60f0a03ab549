using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using LinuxKit.Testing.Testcontainers;

namespace LinuxKit.Testing.Tests.Testcontainers;

/// <summary>The runner's rules, with checks that answer from a script instead of a VM.</summary>
public class WaitStrategyRunnerTests
{
    private sealed class Scripted(Func<int, bool> answer) : IWaitUntil
    {
        public int Calls { get; private set; }

        public Task<bool> UntilAsync(IContainer container) => Task.FromResult(answer(++Calls));
    }

    private static List<WaitStrategy> Strategies(IWaitUntil check, Action<IWaitStrategy>? configure = null) =>
        [.. Wait.ForUnixContainer().AddCustomWaitStrategy(check, configure ?? (s => s.WithInterval(TimeSpan.FromMilliseconds(10)))).Build().Skip(1)];

    private static Task RunAsync(List<WaitStrategy> strategies, Func<bool> isRunning, CancellationToken token = default) =>
        WaitStrategyRunner.RunAsync(null!, strategies, isRunning, what => Task.FromResult<Exception>(new InvalidOperationException("died during " + what)), token);

    [Fact]
    public async Task A_check_is_repeated_until_it_succeeds()
    {
        var check = new Scripted(call => call == 3);

        await RunAsync(Strategies(check), () => true);

        Assert.Equal(3, check.Calls);
    }

    [Fact]
    public async Task A_check_that_never_succeeds_fails_after_its_retries()
    {
        var check = new Scripted(_ => false);

        await Assert.ThrowsAsync<RetryLimitExceededException>(() =>
            RunAsync(Strategies(check, s => s.WithRetries(2).WithInterval(TimeSpan.FromMilliseconds(1))), () => true));

        Assert.Equal(2, check.Calls);
    }

    [Fact]
    public async Task A_check_that_never_succeeds_fails_at_its_timeout_naming_it()
    {
        var check = new Scripted(_ => false);

        var e = await Assert.ThrowsAsync<TimeoutException>(() =>
            RunAsync(Strategies(check, s => s.WithTimeout(TimeSpan.FromMilliseconds(200)).WithInterval(TimeSpan.FromMilliseconds(10))), () => true));

        Assert.Contains("wait strategy 1 of 1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vm_that_ends_during_a_wait_fails_it_without_waiting_for_the_timeout()
    {
        var running = true;
        var check = new Scripted(call =>
        {
            if (call == 2) running = false;
            return false;
        });

        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RunAsync(Strategies(check, s => s.WithTimeout(TimeSpan.FromHours(1)).WithInterval(TimeSpan.FromMilliseconds(10))), () => running));

        Assert.Equal("died during wait strategy 1 of 1", e.Message);
    }

    [Fact]
    public async Task A_one_shot_check_met_by_what_an_ended_vm_left_succeeds()
    {
        var check = new Scripted(call => call >= 2);

        await RunAsync(Strategies(check, s => s.WithMode(WaitStrategyMode.OneShot)), () => false);

        Assert.Equal(2, check.Calls);
    }

    [Fact]
    public async Task A_running_mode_check_is_not_even_tried_on_an_ended_vm()
    {
        var check = new Scripted(_ => true);

        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RunAsync(Strategies(check, s => s.WithMode(WaitStrategyMode.Running)), () => false));

        Assert.Equal(0, check.Calls);
    }

    [Fact]
    public async Task Cancellation_by_the_caller_is_not_reported_as_a_timeout()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            RunAsync(Strategies(new Scripted(_ => false)), () => true, cancel.Token));
    }
}
