using System.Globalization;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Copies files into and out of a guest over its SSH connection, with nothing but a POSIX shell
/// needed in the guest (most LinuxKit images have no SFTP server, and SFTP could not make a
/// write atomic anyway). The scripts the guest runs and the meaning of their exit codes live
/// here together.
/// </summary>
internal static class GuestFiles
{
    // Exit codes of the scripts, beside the shell's own (1: a command in them failed).
    internal const int NoSuchFile = 2;
    internal const int IsFolder = 3;
    internal const int OverLimit = 4;
    internal const int ShortCopy = 5;
    internal const int NotRegularFile = 6;

    /// <summary>
    /// Writes a guest file whole or not at all; missing parent folders are created. A stream of
    /// unknown length is spooled to a private file in <paramref name="spoolFolder"/> first.
    /// </summary>
    /// <exception cref="LinuxKitException">The guest refused the file (read-only file system, full disk, ...).</exception>
    public static async Task WriteAsync(GuestConnection guest, string spoolFolder, string guestPath, Stream content, UnixFileMode mode, int ownerId, int groupId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        RequireAbsolute(guestPath);
        // The guest renames the file into place only at the expected size, so a copy that breaks
        // off never lands; a stream of unknown length is spooled to learn its size.
        FileStream? spooled = null;
        ExecResult result;
        try
        {
            if (!content.CanSeek)
            {
                spooled = PrivateFiles.CreateNew(Path.Combine(spoolFolder, $"copy-{Guid.NewGuid():N}"), FileOptions.DeleteOnClose);
                await SpoolAsync(content, spooled, guestPath, guest.VmId, spoolFolder, cancellationToken).ConfigureAwait(false);
                spooled.Position = 0;
            }
            var source = spooled ?? content;
            var script = WriteScript(guestPath, source.Length - source.Position, mode, ownerId, groupId);
            result = await guest.UseAsync(session => session.RunWithInputAsync(script, source, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (spooled is not null) await spooled.DisposeAsync().ConfigureAwait(false);
        }
        if (result.ExitCode != 0)
            throw new LinuxKitException($"Cannot write '{guestPath}' in VM {guest.VmId} (exit code {result.ExitCode}): {result.Stderr.Trim()}");
    }

    // The caller's stream's own errors stay its own; the spool's (the state directory's disk) are
    // said to be the spool's.
    private static async Task SpoolAsync(Stream content, FileStream spool, string guestPath, string vmId, string spoolFolder, CancellationToken cancellationToken)
    {
        LinuxKitException Failed(IOException e) =>
            new($"Cannot write '{guestPath}' in VM {vmId}: a stream that cannot seek is spooled first to learn its length, in '{spoolFolder}', and that failed: {e.Message}. Free space there, or pass a seekable stream (a FileStream, a MemoryStream).", e);
        var chunk = new byte[81920];
        int read;
        while ((read = await content.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            try
            {
                await spool.WriteAsync(chunk.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            }
            catch (IOException e)
            {
                throw Failed(e);
            }
        }
        try
        {
            await spool.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            throw Failed(e);
        }
    }

    /// <summary>Reads a guest file's bytes, up to <paramref name="limit"/>.</summary>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    /// <exception cref="LinuxKitException">The path is a folder, a device, pipe or socket, over the limit, or cannot be read.</exception>
    public static async Task<byte[]> ReadAsync(GuestConnection guest, string guestPath, long limit, CancellationToken cancellationToken)
    {
        RequireAbsolute(guestPath);
        var script = ReadScript(guestPath, limit);
        var (exitCode, content, error) = await guest.UseAsync(session => session.RunReadingBytesAsync(script, limit, cancellationToken), cancellationToken).ConfigureAwait(false);
        return exitCode == 0 ? content : throw ReadFailure(exitCode, error, guestPath, guest.VmId);
    }

    /// <summary>
    /// The script that reads stdin into <paramref name="guestPath"/>: beside it first, renamed
    /// into place only once all <paramref name="length"/> bytes came (a cancelled copy also ends
    /// stdin, and must not land), with its mode and owner set before it appears.
    /// </summary>
    internal static string WriteScript(string guestPath, long length, UnixFileMode mode, int ownerId, int groupId)
    {
        var path = ShellQuoting.Quote(guestPath);
        var octal = Convert.ToString((int)mode & 0xFFF, 8);
        return string.Create(CultureInfo.InvariantCulture,
            $"set -e; t={path}.linuxkit-$$; trap 'rm -f \"$t\"' EXIT; " +
            $"mkdir -p -- \"$(dirname -- {path})\"; cat > \"$t\"; " +
            $"[ $(wc -c < \"$t\") -eq {length} ] || {{ echo 'incomplete copy' >&2; exit {ShortCopy}; }}; " +
            $"chmod {octal} \"$t\"; chown {ownerId}:{groupId} \"$t\"; mv -f -- \"$t\" {path}; trap - EXIT");
    }

    /// <summary>
    /// The script that sends <paramref name="guestPath"/>'s bytes. The size is checked before
    /// anything is sent (with stat: counting a file by reading it could wait for ever, on a pipe),
    /// and head bounds a file that grows meanwhile. Over the limit, the size goes to stderr.
    /// </summary>
    internal static string ReadScript(string guestPath, long limit)
    {
        var path = ShellQuoting.Quote(guestPath);
        return string.Create(CultureInfo.InvariantCulture,
            $"[ -e {path} ] || exit {NoSuchFile}; [ ! -d {path} ] || exit {IsFolder}; [ -f {path} ] || exit {NotRegularFile}; " +
            $"n=$(stat -L -c %s -- {path}) || exit 1; " +
            $"[ \"$n\" -le {limit} ] || {{ echo \"$n\" >&2; exit {OverLimit}; }}; exec head -c {limit} -- {path}");
    }

    /// <summary>What a <see cref="ReadScript"/> that exited with <paramref name="exitCode"/> means to the caller.</summary>
    internal static Exception ReadFailure(int exitCode, string error, string guestPath, string vmId) => exitCode switch
    {
        NoSuchFile => new FileNotFoundException($"There is no file '{guestPath}' in VM {vmId}.", guestPath),
        IsFolder => new LinuxKitException($"'{guestPath}' in VM {vmId} is a folder; read the files in it one by one."),
        NotRegularFile => new LinuxKitException($"'{guestPath}' in VM {vmId} is not a regular file (a device, pipe or socket); read it with ExecAsync and a command that ends, such as head -c."),
        OverLimit => new LinuxKitException($"'{guestPath}' in VM {vmId} is {error.Trim()} bytes, over the output limit (LinuxKitManagerOptions.OutputLimit); copy it out in parts, or raise the limit."),
        _ => new LinuxKitException($"Cannot read '{guestPath}' in VM {vmId} (exit code {exitCode}): {error.Trim()}"),
    };

    private static void RequireAbsolute(string guestPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(guestPath);
        if (!guestPath.StartsWith('/')) throw new ArgumentException($"Guest path '{guestPath}' is not absolute.", nameof(guestPath));
    }
}
