using System.Globalization;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Copies files into and out of a guest over its SSH connection, with nothing but a POSIX shell
/// needed in the guest (most LinuxKit images have no SFTP server).
/// </summary>
internal static class GuestFiles
{
    /// <summary>
    /// Writes a guest file whole or not at all; missing parent folders are created. A stream of
    /// unknown length is spooled to a private file in <paramref name="spoolFolder"/> first.
    /// </summary>
    /// <exception cref="LinuxKitException">The guest refused the file (read-only file system, full disk, ...).</exception>
    public static async Task WriteAsync(GuestConnection guest, string spoolFolder, string guestPath, Stream content, UnixFileMode mode, int ownerId, int groupId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        RequireAbsolute(guestPath);
        var octal = Convert.ToString((int)mode & 0xFFF, 8);
        var owner = string.Create(CultureInfo.InvariantCulture, $"{ownerId}:{groupId}");
        // The guest renames the file into place only at the expected size, so a copy that breaks
        // off never lands; a stream of unknown length is spooled to learn its size.
        FileStream? spooled = null;
        ExecResult result;
        try
        {
            if (!content.CanSeek)
            {
                spooled = PrivateFiles.CreateNew(Path.Combine(spoolFolder, $"copy-{Guid.NewGuid():N}"), FileOptions.DeleteOnClose);
                await content.CopyToAsync(spooled, cancellationToken).ConfigureAwait(false);
                spooled.Position = 0;
            }
            var source = spooled ?? content;
            var length = source.Length - source.Position;
            result = await guest.UseAsync(session => session.WriteFileAsync(guestPath, source, length, octal, owner, cancellationToken), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (spooled is not null) await spooled.DisposeAsync().ConfigureAwait(false);
        }
        if (result.ExitCode != 0)
            throw new LinuxKitException($"Cannot write '{guestPath}' in VM {guest.VmId} (exit code {result.ExitCode}): {result.Stderr.Trim()}");
    }

    /// <summary>Reads a guest file's bytes.</summary>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    /// <exception cref="LinuxKitException">The path is a folder, a device, pipe or socket, or cannot be read.</exception>
    public static async Task<byte[]> ReadAsync(GuestConnection guest, string guestPath, CancellationToken cancellationToken)
    {
        RequireAbsolute(guestPath);
        var (exitCode, content, error) = await guest.UseAsync(session => session.ReadFileAsync(guestPath, cancellationToken), cancellationToken).ConfigureAwait(false);
        return exitCode switch
        {
            0 => content,
            2 => throw new FileNotFoundException($"There is no file '{guestPath}' in VM {guest.VmId}.", guestPath),
            3 => throw new LinuxKitException($"'{guestPath}' in VM {guest.VmId} is a folder; read the files in it one by one."),
            6 => throw new LinuxKitException($"'{guestPath}' in VM {guest.VmId} is not a regular file (a device, pipe or socket); read it with ExecAsync and a command that ends, such as head -c."),
            4 => throw new LinuxKitException($"'{guestPath}' in VM {guest.VmId} is {error.Trim()} bytes, over the output limit (LinuxKitManagerOptions.OutputLimit); copy it out in parts, or raise the limit."),
            _ => throw new LinuxKitException($"Cannot read '{guestPath}' in VM {guest.VmId} (exit code {exitCode}): {error.Trim()}"),
        };
    }

    private static void RequireAbsolute(string guestPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(guestPath);
        if (!guestPath.StartsWith('/')) throw new ArgumentException($"Guest path '{guestPath}' is not absolute.", nameof(guestPath));
    }
}
