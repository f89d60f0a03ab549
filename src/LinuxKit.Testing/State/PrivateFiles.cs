using System.Runtime.InteropServices;

namespace LinuxKit.Testing.State;

/// <summary>
/// Files and folders only their owner can read or write (0600, 0700), and the checks that a
/// folder handed to the SDK belongs to the current user: what the state directory holds (keys,
/// records that name processes to signal) must not be readable or steerable by another user.
/// </summary>
// The SDK runs on Linux and macOS only (QEMU, Hyperkit, Unix sockets, signals); Unix file modes
// are part of what it needs there.
#pragma warning disable CA1416
internal static partial class PrivateFiles
{
    public const UnixFileMode FolderMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates a 0700 folder (and missing parents, also 0700); an existing one is left as it is.</summary>
    public static void CreateFolder(string path) => Directory.CreateDirectory(path, FolderMode);

    /// <summary>Makes an existing file (or socket) 0600.</summary>
    public static void MakeFilePrivate(string path) => File.SetUnixFileMode(path, FileMode);

    /// <summary>Makes an existing folder 0700.</summary>
    public static void MakePrivate(string folder) => File.SetUnixFileMode(folder, FolderMode);

    /// <summary>Creates or replaces a 0600 file.</summary>
    public static FileStream Create(string path, FileOptions options = FileOptions.None) =>
        new(path, new FileStreamOptions { Mode = System.IO.FileMode.Create, Access = FileAccess.ReadWrite, Share = FileShare.None, UnixCreateMode = FileMode, Options = options });

    /// <summary>Opens a file, creating it 0600 when it does not exist (an existing one keeps its mode).</summary>
    public static FileStream OpenOrCreate(string path, FileShare share) =>
        new(path, new FileStreamOptions { Mode = System.IO.FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = share, UnixCreateMode = FileMode });

    /// <summary>Copies a file to a 0600 one (File.Copy would give the copy the source's mode).</summary>
    public static void Copy(string source, string target)
    {
        using var from = new FileStream(source, System.IO.FileMode.Open, FileAccess.Read, FileShare.Read);
        using var to = Create(target);
        from.CopyTo(to);
    }

    /// <summary>
    /// Copies a file to a 0600 one, leaving its holes holes: a guest's RAM file is mostly pages
    /// the guest never touched, which a plain copy would write out as zeros.
    /// </summary>
    public static void CopySparse(string source, string target)
    {
        using var from = new FileStream(source, System.IO.FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var to = Create(target);
        var length = from.Length;
        to.SetLength(length);
        var buffer = new byte[1024 * 1024];
        var fd = (int)from.SafeFileHandle.DangerousGetHandle();
        var targetFd = (int)to.SafeFileHandle.DangerousGetHandle();
        var noKernelCopy = false;
        var (seekData, seekHole) = OperatingSystem.IsMacOS() ? (4, 3) : (3, 4);
        var position = 0L;
        while (position < length)
        {
            var data = LSeek(fd, position, seekData);
            if (data < 0)
            {
                if (Marshal.GetLastPInvokeError() == NoDataAfter) break;
                data = position; // a file system that cannot tell: the rest is copied whole
            }
            var hole = LSeek(fd, data, seekHole);
            if (hole < 0 || hole > length) hole = length;
            var offset = data;
            // Linux copies within the kernel (or shares the blocks, where the file system can):
            // several times faster than through a buffer here.
            while (offset < hole && OperatingSystem.IsLinux() && !noKernelCopy)
            {
                long inOffset = offset, outOffset = offset;
                var copied = CopyFileRange(fd, ref inOffset, targetFd, ref outOffset, (nuint)Math.Min(hole - offset, 1L << 30), 0);
                if (copied <= 0)
                {
                    noKernelCopy = copied < 0; // another kernel or file system: the buffer does it
                    break;
                }
                offset += copied;
            }
            while (offset < hole)
            {
                var read = RandomAccess.Read(from.SafeFileHandle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, hole - offset)), offset);
                if (read == 0) break;
                RandomAccess.Write(to.SafeFileHandle, buffer.AsSpan(0, read), offset);
                offset += read;
            }
            position = hole;
        }
    }

    /// <summary>
    /// Renames a file within its file system, never onto an existing one; unlike File.Move it
    /// never falls back to copy and delete, which would leave a process that has the file open
    /// writing to a deleted one.
    /// </summary>
    /// <exception cref="IOException">The target exists, or the rename failed (another file system: EXDEV).</exception>
    public static void Rename(string source, string target)
    {
        if (File.Exists(target) || Directory.Exists(target)) throw new IOException($"'{target}' exists already.");
        if (RenameFile(source, target) != 0)
            throw new IOException($"Cannot rename '{source}' to '{target}': {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}.");
    }

    // ENXIO from lseek(SEEK_DATA): only a hole follows.
    private const int NoDataAfter = 6;

    /// <summary>Creates a 0600 file that must not exist yet.</summary>
    public static FileStream CreateNew(string path, FileOptions options = FileOptions.None) =>
        new(path, new FileStreamOptions { Mode = System.IO.FileMode.CreateNew, Access = FileAccess.ReadWrite, Share = FileShare.None, UnixCreateMode = FileMode, Options = options });

    /// <summary>Writes a 0600 file whole.</summary>
    public static async Task WriteAsync(string path, byte[] content, CancellationToken cancellationToken)
    {
        var file = Create(path);
        await using (file.ConfigureAwait(false))
        {
            await file.WriteAsync(content, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Why <paramref name="folder"/> cannot be trusted with the SDK's state, or null when it can:
    /// it must be a real folder (not a symlink), owned by the current user, and writable by no
    /// one else.
    /// </summary>
    public static string? Distrust(string folder)
    {
        var info = new DirectoryInfo(folder);
        if (info.LinkTarget is { } target) return $"it is a symbolic link (to '{target}')";
        var owner = OwnerOf(folder);
        var self = CurrentUser();
        if (owner is { } uid && uid != self) return $"it belongs to user id {uid}, not to this user (id {self})";
        var mode = File.GetUnixFileMode(folder);
        if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            return $"its group or other users can write to it (mode {Convert.ToString((int)mode, 8)})";
        return null;
    }

    /// <summary>The effective user id of this process.</summary>
    public static uint CurrentUser() => GetEffectiveUserId();

    /// <summary>The user id owning <paramref name="path"/> (the link itself for a symlink); null when it cannot be read.</summary>
    public static uint? OwnerOf(string path)
    {
        // The runtime's own lstat wrapper has one layout on every Unix (Flags, Mode, Uid, Gid,
        // ...), where libc's struct stat differs by platform; the buffer is larger than the
        // struct on every runtime version.
        var status = new byte[512];
        return LStat(path, status) == 0 ? BitConverter.ToUInt32(status, 8) : null;
    }

    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_LStat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int LStat(string path, [Out] byte[] status);

    [LibraryImport("libc", EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameFile(string source, string target);

    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    private static partial nint CopyFileRange(int sourceFd, ref long sourceOffset, int targetFd, ref long targetOffset, nuint length, uint flags);

    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    private static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
