using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// The bytes a file takes on disk. A template's memory file is as long as the guest's RAM but
/// holds data only where the guest wrote: its holes take no space.
/// </summary>
internal static partial class DiskUsage
{
    // Linux's lseek(2) whences; other systems number them differently and get the length.
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int NoDataPastOffset = 6; // ENXIO

    public static long Of(string path)
    {
        using var handle = File.OpenHandle(path);
        var length = RandomAccess.GetLength(handle);
        if (!OperatingSystem.IsLinux()) return length;
        long used = 0;
        long offset = 0;
        while (offset < length)
        {
            var data = Seek(handle, offset, SeekData);
            // ENXIO: no data past offset. Anything else: the file system cannot say, so its length.
            if (data < 0) return Marshal.GetLastPInvokeError() == NoDataPastOffset ? used : length;
            var hole = Seek(handle, data, SeekHole);
            if (hole < 0) hole = length;
            used += hole - data;
            offset = hole;
        }
        return used;
    }

    /// <summary>The bytes free to this user on the file system that holds <paramref name="path"/> (or its nearest existing folder); null when it cannot be told.</summary>
    public static long? FreeBytes(string path)
    {
        var folder = Path.GetFullPath(path);
        while (!Directory.Exists(folder) && Path.GetDirectoryName(folder) is { } parent) folder = parent;
        try
        {
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long Seek(SafeFileHandle handle, long offset, int whence);
}
