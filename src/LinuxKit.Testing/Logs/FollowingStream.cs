namespace LinuxKit.Testing.Logs;

/// <summary>
/// Reads a console log as it grows, like <c>tail -f</c>, and ends (returns 0) once the VM has
/// stopped and everything it wrote was read, or when the token is cancelled.
/// </summary>
internal sealed class FollowingStream(FileStream file, Func<bool> vmRunning, CancellationToken cancellationToken) : Stream
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => file.Position; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken token) =>
        ReadAsync(buffer.AsMemory(offset, count), token).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken token = default)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, token);
        while (true)
        {
            var read = await file.ReadAsync(buffer, CancellationToken.None).ConfigureAwait(false);
            if (read > 0) return read;
            if (both.IsCancellationRequested) return 0;
            // Rotated (see ConsoleRotation): the log started again from empty.
            if (file.Length < file.Position) file.Position = 0;
            if (!vmRunning())
            {
                // The hypervisor may have written its last lines after our previous read.
                return await file.ReadAsync(buffer, CancellationToken.None).ConfigureAwait(false);
            }
            try
            {
                await Task.Delay(Poll, both.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return 0;
            }
        }
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) file.Dispose();
        base.Dispose(disposing);
    }
}
