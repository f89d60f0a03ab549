using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Logs;

/// <summary>A VM's console log as timestamped lines, at most a given number of bytes from its end.</summary>
internal static class ConsoleReader
{
    public static async Task<IReadOnlyList<ConsoleLine>> ReadAsync(
        VmFiles files, ConsoleTimeline timeline, long limit, DateTimeOffset now, DateTimeOffset? since, DateTimeOffset? until, CancellationToken cancellationToken)
    {
        byte[] log;
        long firstByte;
        var file = ConsoleLog.Open(files.ConsoleLog);
        await using (file.ConfigureAwait(false))
        {
            // A console log can outgrow any buffer: the end is what matters.
            var length = file.Length;
            firstByte = Math.Max(0, length - limit);
            file.Seek(firstByte, SeekOrigin.Begin);
            log = new byte[length - firstByte];
            await file.ReadExactlyAsync(log, cancellationToken).ConfigureAwait(false);
            timeline.Mark(length, now);
        }
        if (firstByte > 0)
        {
            // The first line is cut: it starts after the first newline.
            var skip = Array.IndexOf(log, (byte)'\n') + 1;
            log = log[skip..];
            firstByte += skip;
        }
        return timeline.Lines(log, firstByte, since ?? DateTimeOffset.MinValue, until ?? DateTimeOffset.MaxValue);
    }
}
