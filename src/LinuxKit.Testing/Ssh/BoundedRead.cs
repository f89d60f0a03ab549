namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Reads what a guest sends, never more than a limit. The guest side bounds its output
/// (<c>head -c</c>), but a hostile guest or a replaced <c>head</c> can write for ever, and SSH.NET
/// buffers whatever arrives on a channel: the host stops at the limit and the caller ends the
/// channel, so neither buffer grows past it.
/// </summary>
internal static class BoundedRead
{
    /// <summary>What a script's stderr may hold: an error message, never data.</summary>
    public const int ErrorTextLimit = 64 * 1024;

    /// <summary>The error for a script whose stderr was over <see cref="ErrorTextLimit"/>.</summary>
    public static LinuxKitException ErrorTextFlood() =>
        new($"The guest wrote more than {ErrorTextLimit} bytes of error text for one SDK script; it was stopped (is a command in the guest, such as head or cat, replaced?).");

    /// <summary>The stream's bytes to its end; null when more than <paramref name="limit"/> came (the rest is not read).</summary>
    public static async Task<byte[]?> ToEndAsync(Stream stream, long limit)
    {
        using var bytes = new MemoryStream();
        var chunk = new byte[64 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk).ConfigureAwait(false)) > 0)
        {
            if (bytes.Length + read > limit) return null;
            bytes.Write(chunk, 0, read);
        }
        return bytes.ToArray();
    }

    /// <summary>
    /// Reads the stream to its end, however much comes, and keeps only its last
    /// <paramref name="kept"/> bytes as text; a read that fails ends it like the stream's end.
    /// Synchronous: it is meant for a thread of its own, since SSH.NET's streams block a thread
    /// per read anyway, and one read outstanding for a channel's whole life must not hold a
    /// thread-pool thread.
    /// </summary>
    public static string Tail(Stream stream, int kept)
    {
        var tail = new byte[kept];
        var length = 0;
        var chunk = new byte[8192];
        try
        {
            int read;
            while ((read = stream.Read(chunk)) > 0)
            {
                var fresh = chunk.AsSpan(0, read);
                if (fresh.Length >= kept)
                {
                    fresh[^kept..].CopyTo(tail);
                    length = kept;
                    continue;
                }
                var keep = Math.Min(length, kept - fresh.Length);
                tail.AsSpan(length - keep, keep).CopyTo(tail);
                fresh.CopyTo(tail.AsSpan(keep));
                length = keep + fresh.Length;
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or Renci.SshNet.Common.SshException)
        {
            // The channel went away: what came until then is the tail.
        }
        return System.Text.Encoding.UTF8.GetString(tail, 0, length);
    }

    /// <summary>
    /// A channel's stdout and stderr, read together (a guest may fill either while the other is
    /// read), each up to its limit. Returns as soon as one goes over: that one is null, and the
    /// caller ends the channel, which ends the other read.
    /// </summary>
    public static async Task<(byte[]? Output, byte[]? Error)> BothAsync(Stream output, long outputLimit, Stream error, long errorLimit)
    {
        var reads = new[] { ToEndAsync(output, outputLimit), ToEndAsync(error, errorLimit) };
        var first = await Task.WhenAny(reads).ConfigureAwait(false);
        if (await first.ConfigureAwait(false) is null)
        {
            var other = reads[0] == first ? reads[1] : reads[0];
            _ = other.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return reads[0] == first ? (null, []) : ([], null);
        }
        return (await reads[0].ConfigureAwait(false), await reads[1].ConfigureAwait(false));
    }
}
