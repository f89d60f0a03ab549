namespace LinuxKit.Testing.Images;

/// <summary>
/// The files a boot loader reads from an ISO or a disk partition, found without mounting: enough
/// to read a boot menu and copy the kernel and initrd it names.
/// </summary>
internal abstract class ImageFileSystem
{
    protected ImageFileSystem(VirtualDisk disk) => Disk = disk;

    /// <summary>The disk the file system lies on.</summary>
    protected VirtualDisk Disk { get; }

    /// <summary>What the file system is, for messages ("the ISO 9660 file system").</summary>
    public abstract string Description { get; }

    /// <summary>
    /// The runs of bytes on the disk that hold the file at <paramref name="path"/> ("/a/b", "/"
    /// separated, absolute), in order; null when there is no such file.
    /// </summary>
    public abstract IReadOnlyList<FileRun>? Find(string path);

    /// <summary>The file's whole content, when it is at most <paramref name="limit"/> bytes; null when missing or larger.</summary>
    /// <exception cref="InvalidDataException">The disk ends before the file does.</exception>
    public byte[]? ReadAll(string path, int limit) =>
        Find(path) is { } runs && runs.Sum(r => r.Length) <= limit ? Read(Disk, runs, limit) : null;

    /// <summary>The first bytes of a file, up to <paramref name="length"/>.</summary>
    /// <exception cref="InvalidDataException">The disk ends before the file does.</exception>
    public byte[] Head(IReadOnlyList<FileRun> runs, int length) => Read(Disk, runs, length);

    /// <summary>Copies the file's runs on <paramref name="disk"/> into <paramref name="destination"/>, a megabyte at a time.</summary>
    /// <exception cref="InvalidDataException">The disk ends before the file does.</exception>
    public static async Task CopyAsync(VirtualDisk disk, IReadOnlyList<FileRun> runs, Stream destination, CancellationToken cancellationToken)
    {
        const int Chunk = 1 << 20;
        foreach (var run in runs)
        {
            for (long done = 0; done < run.Length; done += Chunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var part = Read(disk, new FileRun(run.Offset + done, Math.Min(Chunk, run.Length - done)));
                await destination.WriteAsync(part, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The runs' bytes, cut at <paramref name="limit"/>.</summary>
    /// <exception cref="InvalidDataException">The disk ends before the runs do.</exception>
    protected static byte[] Read(VirtualDisk disk, IReadOnlyList<FileRun> runs, int limit)
    {
        using var content = new MemoryStream();
        foreach (var run in runs)
        {
            if (content.Length >= limit) break;
            content.Write(Read(disk, run with { Length = Math.Min(run.Length, limit - content.Length) }));
        }
        return content.ToArray();
    }

    private static byte[] Read(VirtualDisk disk, FileRun run)
    {
        var bytes = disk.Read(run.Offset, (int)run.Length);
        if (bytes.Length != run.Length)
            throw new InvalidDataException($"the image ends inside a file (at byte {run.Offset + bytes.Length})");
        return bytes;
    }

    /// <summary>Path parts of an absolute or relative path, without empty ones.</summary>
    protected static string[] Parts(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);
}

/// <summary>Bytes of a file at <paramref name="Offset"/> on its disk.</summary>
internal readonly record struct FileRun(long Offset, long Length);
