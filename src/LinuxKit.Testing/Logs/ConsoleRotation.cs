namespace LinuxKit.Testing.Logs;

/// <summary>
/// Keeps a console log on disk below its limit: past it, the log's content moves to
/// <c>console.log.1</c> (replacing the one before) and the log starts again empty. QEMU appends
/// to the file (its chardev opens it with O_APPEND), so it goes on writing at the new end. On disk
/// are then at most the limit, plus what the guest wrote since the last look, twice. What the
/// guest writes in the moment between the copy and the truncation is lost.
/// </summary>
internal static class ConsoleRotation
{
    /// <summary>The file the older part of a console log is kept in.</summary>
    public static string Previous(string consoleLog) => consoleLog + ".1";

    /// <summary>Rotates <paramref name="consoleLog"/> when it is over <paramref name="limit"/> bytes; true when it did.</summary>
    public static bool RotateIfOver(string consoleLog, long limit)
    {
        try
        {
            var info = new FileInfo(consoleLog);
            if (!info.Exists || info.Length <= limit) return false;
            var previous = Previous(consoleLog);
            using (var source = ConsoleLog.Open(consoleLog))
            using (var copy = State.PrivateFiles.Create(previous))
            {
                source.CopyTo(copy);
            }
            using (var log = new FileStream(consoleLog, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete))
            {
                log.SetLength(0);
            }
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // tried again at the next look
        }
    }
}
