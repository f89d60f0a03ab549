namespace LinuxKit.Testing.Logs;

/// <summary>
/// Follows a VM's console log while it runs: marks the <see cref="ConsoleTimeline"/> as the
/// file grows and copies what is new to the caller's stream, if any.
/// </summary>
internal sealed class ConsoleWatcher : IAsyncDisposable
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(100);

    private readonly string _path;
    private readonly Stream? _sink;
    private readonly long _limit;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _copied;

    private ConsoleWatcher(string path, Stream? sink, long limit)
    {
        _path = path;
        _sink = sink;
        _limit = limit;
        _loop = Task.Run(LoopAsync);
    }

    public ConsoleTimeline Timeline { get; } = new();

    public string Path => _path;

    /// <summary>
    /// Starts following <paramref name="path"/>; what it already holds is stamped now. Past
    /// <paramref name="limit"/> bytes the log is rotated (see <see cref="ConsoleRotation"/>).
    /// </summary>
    public static ConsoleWatcher Start(string path, Stream? sink = null, long limit = long.MaxValue) => new(path, sink, limit);

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            await CatchUpAsync().ConfigureAwait(false);
            // After the catch-up, so the caller's stream has everything the log held.
            if (ConsoleRotation.RotateIfOver(_path, _limit))
            {
                Timeline.Restart();
                _copied = 0;
            }
            try
            {
                await Task.Delay(Poll, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private async Task CatchUpAsync()
    {
        long length;
        try
        {
            var file = new FileInfo(_path);
            length = file.Exists ? file.Length : 0;
        }
        catch (IOException)
        {
            return;
        }
        Timeline.Mark(length, DateTimeOffset.UtcNow);
        if (_sink is null || length <= _copied) return;
        try
        {
            var file = ConsoleLog.Open(_path);
            await using var fileDisposal = file.ConfigureAwait(false);
            file.Seek(_copied, SeekOrigin.Begin);
            var buffer = new byte[64 * 1024];
            while (_copied < length)
            {
                var read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - _copied))).ConfigureAwait(false);
                if (read == 0) break;
                await _sink.WriteAsync(buffer.AsMemory(0, read)).ConfigureAwait(false);
                _copied += read;
            }
            await _sink.FlushAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or NotSupportedException)
        {
            // The caller's stream broke or was closed: the VM is not its concern.
        }
    }

    /// <summary>Takes in what the VM wrote last, then stops following.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        await CatchUpAsync().ConfigureAwait(false);
        _stop.Dispose();
    }
}
