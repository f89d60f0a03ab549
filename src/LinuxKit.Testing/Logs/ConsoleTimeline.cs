using System.Text;

namespace LinuxKit.Testing.Logs;

/// <summary>
/// When each part of a console log appeared. A serial console carries no timestamps and the
/// hypervisor writes none, so times come from watching the file grow: each mark says the log
/// had reached a length at a moment. A byte's time is that of the first mark that covers it.
/// </summary>
internal sealed class ConsoleTimeline
{
    private readonly List<(long Length, DateTimeOffset Time)> _marks = [];
    private readonly object _lock = new();

    /// <summary>The log had <paramref name="length"/> bytes at <paramref name="time"/>.</summary>
    public void Mark(long length, DateTimeOffset time)
    {
        lock (_lock)
        {
            if (_marks.Count == 0 || length > _marks[^1].Length) _marks.Add((length, time));
        }
    }

    /// <summary>The log was rotated: it starts again empty, and older lines are no longer in it.</summary>
    public void Restart()
    {
        lock (_lock) _marks.Clear();
    }

    /// <summary>The length of the log at the last mark.</summary>
    public long Length
    {
        get { lock (_lock) return _marks.Count == 0 ? 0 : _marks[^1].Length; }
    }

    /// <summary>When the byte at <paramref name="offset"/> was first seen; null when not yet.</summary>
    public DateTimeOffset? TimeOf(long offset)
    {
        lock (_lock)
        {
            var low = 0;
            var high = _marks.Count - 1;
            DateTimeOffset? found = null;
            while (low <= high)
            {
                var middle = (low + high) / 2;
                if (_marks[middle].Length > offset)
                {
                    found = _marks[middle].Time;
                    high = middle - 1;
                }
                else
                {
                    low = middle + 1;
                }
            }
            return found;
        }
    }

    /// <summary>
    /// Splits <paramref name="log"/> (the console log's first bytes) into lines with their times,
    /// keeping those written from <paramref name="since"/> up to <paramref name="until"/>
    /// (inclusive). Bytes past the last mark are left for a later call.
    /// </summary>
    public IReadOnlyList<ConsoleLine> Lines(ReadOnlySpan<byte> log, DateTimeOffset since, DateTimeOffset until) => Lines(log, 0, since, until);

    /// <summary>The lines of <paramref name="log"/>, the part of the console log from byte <paramref name="firstByte"/> on.</summary>
    public IReadOnlyList<ConsoleLine> Lines(ReadOnlySpan<byte> log, long firstByte, DateTimeOffset since, DateTimeOffset until)
    {
        var lines = new List<ConsoleLine>();
        var known = (int)Math.Clamp(Length - firstByte, 0, log.Length);
        var start = 0;
        while (start < known)
        {
            var end = log[start..known].IndexOf((byte)'\n');
            var next = end < 0 ? known : start + end + 1;
            var time = TimeOf(firstByte + start)!.Value;
            if (time >= since && time <= until)
            {
                var text = Encoding.UTF8.GetString(log[start..(end < 0 ? known : start + end)]).TrimEnd('\r');
                lines.Add(new ConsoleLine(time, text));
            }
            start = next;
        }
        return lines;
    }

}
