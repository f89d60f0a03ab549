namespace LinuxKit.Testing.Logs;

/// <summary>
/// A guest's console made safe to show on a terminal: its control characters (escape sequences
/// that move the cursor, retitle the window, rewrite what was printed) shown as <c>\xNN</c>,
/// newlines and tabs kept. The console is the guest's to write, and the guest is not trusted.
/// </summary>
internal static class TerminalText
{
    /// <summary>Copies <paramref name="source"/> to <paramref name="target"/>, escaping control characters.</summary>
    public static async Task CopyEscapedAsync(Stream source, Stream target, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            var escaped = Escape(buffer.AsSpan(0, read));
            await target.WriteAsync(escaped, cancellationToken).ConfigureAwait(false);
            await target.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The bytes with every C0 control but newline and tab, and DEL, written as <c>\xNN</c>; a CR before LF kept.</summary>
    public static byte[] Escape(ReadOnlySpan<byte> text)
    {
        var output = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var b = text[i];
            var keep = b is (byte)'\n' or (byte)'\t' || (b >= 0x20 && b != 0x7F) || (b == (byte)'\r' && i + 1 < text.Length && text[i + 1] == (byte)'\n');
            if (keep) output.Add(b);
            else output.AddRange(System.Text.Encoding.ASCII.GetBytes($"\\x{b:x2}"));
        }
        return [.. output];
    }
}
