using System.Text;
using LinuxKit.Testing.Fixtures;

namespace LinuxKit.Testing.Tests.Fixtures;

public sealed class ConsoleLinesTests
{
    [Fact]
    public void Lines_split_across_writes_reach_the_sink_whole_and_the_forward_stream_gets_every_byte()
    {
        var lines = new List<string>();
        using var forward = new MemoryStream();
        using var console = new ConsoleLines { Sink = lines.Add, Forward = forward };
        var bytes = Encoding.UTF8.GetBytes("Welcome to Li\u00f1uxKit\r\nsecond li");
        console.Write(bytes, 0, 14); // cuts the two-byte ñ in half
        console.Write(bytes, 14, bytes.Length - 14);
        console.Write("ne\n"u8.ToArray(), 0, 3);

        Assert.Equal(["Welcome to Li\u00f1uxKit", "second line"], lines);
        Assert.Equal("Welcome to Li\u00f1uxKit\r\nsecond line\n", Encoding.UTF8.GetString(forward.ToArray()));
    }

    [Fact]
    public void A_sink_replaced_between_lines_gets_only_the_lines_after_and_one_that_refuses_is_dropped()
    {
        var first = new List<string>();
        var second = new List<string>();
        using var console = new ConsoleLines { Sink = first.Add };
        console.Write("one\n"u8.ToArray(), 0, 4);
        console.Sink = second.Add;
        console.Write("two\n"u8.ToArray(), 0, 4);
        console.Sink = _ => throw new InvalidOperationException("There is no currently active test.");
        console.Write("three\n"u8.ToArray(), 0, 6); // an ended test's output: dropped, no error

        Assert.Equal(["one"], first);
        Assert.Equal(["two"], second);
    }
}
