namespace LinuxKit.Testing.State;

/// <summary>
/// A lock that every process honours: a file held open with <see cref="FileShare.None"/>, which
/// on Unix is an exclusive flock(2) that the kernel drops when its holder dies.
/// </summary>
internal static class LockFile
{
    /// <summary>
    /// The held lock (dispose it to release), or null when another holder keeps it longer than
    /// <paramref name="timeout"/>.
    /// </summary>
    public static async Task<FileStream?> AcquireAsync(string path, TimeSpan retry, TimeSpan timeout, CancellationToken cancellationToken)
    {
        FileStream? held = null;
        return await Polling.UntilAsync(() => (held = TryAcquire(path)) is not null, retry, timeout, cancellationToken).ConfigureAwait(false)
            ? held
            : null;
    }

    /// <summary>The lock if it is free now, else null.</summary>
    public static FileStream? TryAcquire(string path)
    {
        try
        {
            // 0600 as every file of the state directory: a root the user chose keeps its own mode.
            return PrivateFiles.OpenOrCreate(path, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
