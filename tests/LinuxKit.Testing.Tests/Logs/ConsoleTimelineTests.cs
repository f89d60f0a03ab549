using System.Text;
using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public class ConsoleTimelineTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 28, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void A_line_takes_the_time_its_first_byte_was_seen()
    {
        var timeline = new ConsoleTimeline();
        var log = Encoding.UTF8.GetBytes("boot\nhalf a li" + "ne\r\nlater\n");
        timeline.Mark(14, T0);                  // "boot\nhalf a li"
        timeline.Mark(log.Length, T0.AddSeconds(5));

        var lines = timeline.Lines(log, DateTimeOffset.MinValue, DateTimeOffset.MaxValue);

        Assert.Equal(
            [new ConsoleLine(T0, "boot"), new ConsoleLine(T0, "half a line"), new ConsoleLine(T0.AddSeconds(5), "later")],
            lines);
    }

    [Fact]
    public void Since_and_until_keep_the_lines_written_between_them_inclusive()
    {
        var timeline = new ConsoleTimeline();
        var log = Encoding.UTF8.GetBytes("one\ntwo\nthree\n");
        timeline.Mark(4, T0);
        timeline.Mark(8, T0.AddSeconds(1));
        timeline.Mark(14, T0.AddSeconds(2));

        Assert.Equal(["two", "three"], timeline.Lines(log, T0.AddSeconds(1), DateTimeOffset.MaxValue).Select(l => l.Text));
        Assert.Equal(["one", "two"], timeline.Lines(log, DateTimeOffset.MinValue, T0.AddSeconds(1)).Select(l => l.Text));
        Assert.Empty(timeline.Lines(log, T0.AddSeconds(3), DateTimeOffset.MaxValue));
    }

    [Fact]
    public void Bytes_past_the_last_mark_are_left_for_later()
    {
        var timeline = new ConsoleTimeline();
        timeline.Mark(4, T0);

        var lines = timeline.Lines(Encoding.UTF8.GetBytes("one\ntwo\n"), DateTimeOffset.MinValue, DateTimeOffset.MaxValue);

        Assert.Equal(["one"], lines.Select(l => l.Text));
    }

    [Fact]
    public void A_mark_that_does_not_grow_the_log_keeps_the_earlier_time()
    {
        var timeline = new ConsoleTimeline();
        timeline.Mark(4, T0);
        timeline.Mark(4, T0.AddSeconds(9));

        Assert.Equal(T0, timeline.TimeOf(3));
        Assert.Null(timeline.TimeOf(4));
    }
}
