using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// Runs Testcontainers' wait strategies against a VM, honouring each one's timeout, interval,
/// retries and mode. Unlike a container, a VM that dies is noticed while a check is still in
/// flight: the check is cancelled and the start fails at once with the console's last lines.
/// </summary>
internal static class WaitStrategyRunner
{
    private static readonly TimeSpan DeathPoll = TimeSpan.FromMilliseconds(250);

    /// <param name="container">What the strategies inspect.</param>
    /// <param name="strategies">Testcontainers' built strategies, in order.</param>
    /// <param name="isRunning">Whether the VM still runs.</param>
    /// <param name="died">Builds the error for a VM that stopped during a wait.</param>
    /// <param name="cancellationToken">The start's token (cancelled by the caller or by the start-up timeout).</param>
    public static async Task RunAsync(
        IContainer container,
        IReadOnlyList<WaitStrategy> strategies,
        Func<bool> isRunning,
        Func<string, Task<Exception>> died,
        CancellationToken cancellationToken)
    {
        for (var i = 0; i < strategies.Count; i++)
        {
            var strategy = strategies[i];
            var what = $"wait strategy {i + 1} of {strategies.Count}";
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (strategy.Timeout > TimeSpan.Zero && strategy.Timeout < TimeSpan.FromDays(1)) timeout.CancelAfter(strategy.Timeout);
            using var death = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
            var watch = WatchForDeathAsync(isRunning, death);
            bool satisfied;
            try
            {
                satisfied = await UntilSatisfiedAsync(container, strategy, what, isRunning, death.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !isRunning())
            {
                satisfied = false;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"The VM's {what} did not succeed within {strategy.Timeout}.");
            }
            finally
            {
                await death.CancelAsync().ConfigureAwait(false);
                await watch.ConfigureAwait(false);
            }
            if (satisfied) continue;
            // The VM ended. A one-shot strategy may be met by what the VM left behind (its
            // console), so it gets one last look; anything else has failed for good.
            if (strategy.Mode == WaitStrategyMode.OneShot && await LastLookAsync(container, strategy, cancellationToken).ConfigureAwait(false)) continue;
            throw await died(what).ConfigureAwait(false);
        }
    }

    // True once satisfied; false when the VM is no longer running.
    private static async Task<bool> UntilSatisfiedAsync(IContainer container, WaitStrategy strategy, string what, Func<bool> isRunning, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            if (strategy.Mode == WaitStrategyMode.Running && !isRunning()) return false;
            bool satisfied;
            try
            {
                satisfied = await strategy.UntilAsync(container, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception) when (!isRunning())
            {
                return false; // the check failed because the VM went away under it
            }
            if (satisfied) return true;
            if (!isRunning()) return false;
            if (strategy.Retries > 0 && attempt >= strategy.Retries)
                throw new RetryLimitExceededException($"The VM's {what} did not succeed in {strategy.Retries} attempts.");
            await Task.Delay(strategy.Interval, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<bool> LastLookAsync(IContainer container, WaitStrategy strategy, CancellationToken cancellationToken)
    {
        try
        {
            return await strategy.UntilAsync(container, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return false;
        }
    }

    private static async Task WatchForDeathAsync(Func<bool> isRunning, CancellationTokenSource death)
    {
        try
        {
            while (!death.IsCancellationRequested)
            {
                await Task.Delay(DeathPoll, death.Token).ConfigureAwait(false);
                if (!isRunning())
                {
                    await death.CancelAsync().ConfigureAwait(false);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
