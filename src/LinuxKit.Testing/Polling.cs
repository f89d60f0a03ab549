namespace LinuxKit.Testing;

/// <summary>
/// Waits for a condition by checking it at an interval, on a clock tests can replace: the one
/// way the SDK waits for a process, a file or a guest that gives no event to wait on.
/// </summary>
internal static class Polling
{
    /// <summary>
    /// Checks <paramref name="condition"/> now and then every <paramref name="interval"/>; true
    /// once it holds, false when <paramref name="timeout"/> (<see cref="Timeout.InfiniteTimeSpan"/>
    /// for none) passed first.
    /// </summary>
    /// <exception cref="OperationCanceledException">The token was cancelled first.</exception>
    public static async Task<bool> UntilAsync(Func<bool> condition, TimeSpan interval, TimeSpan timeout, CancellationToken cancellationToken, TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var start = time.GetTimestamp();
        while (!condition())
        {
            if (timeout != Timeout.InfiniteTimeSpan && time.GetElapsedTime(start) >= timeout) return false;
            await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
        }
        return true;
    }
}
