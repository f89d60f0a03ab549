using System.Text;

namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// The stream a shared VM's console is copied to (<see cref="RunOptions.ConsoleOutput"/>): it
/// cuts it into lines for whichever test output <see cref="Sink"/> names at the moment, and
/// passes the bytes on to the stream the caller had set, if any.
/// </summary>
internal sealed class ConsoleLines : Stream
{
    private readonly StringBuilder _partial = new();
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();

    /// <summary>Where each complete line goes now (a test's output); null for nowhere.</summary>
    public Action<string>? Sink { get; set; }

    /// <summary>A stream the caller set as <see cref="RunOptions.ConsoleOutput"/>, which still gets every byte.</summary>
    public Stream? Forward { get; set; }

    public override void Write(byte[] buffer, int offset, int count)
    {
        Forward?.Write(buffer, offset, count);
        var chars = new char[_decoder.GetCharCount(buffer, offset, count)];
        _decoder.GetChars(buffer, offset, count, chars, 0);
        foreach (var c in chars)
        {
            if (c == '\n')
            {
                Emit(_partial.ToString().TrimEnd('\r'));
                _partial.Clear();
            }
            else
            {
                _partial.Append(c);
            }
        }
    }

    private void Emit(string line)
    {
        if (Sink is not { } sink) return;
        try
        {
            sink(line);
        }
        catch (InvalidOperationException)
        {
            // The test whose output this was has ended (xUnit refuses writes then).
        }
    }

    public override void Flush() => Forward?.Flush();

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
