namespace LinuxKit.Testing.Images;

/// <summary>
/// The bytes a guest sees on a disk or CD, whatever file format holds them: what tells which
/// firmware and architecture an image boots with.
/// </summary>
internal abstract class VirtualDisk : IDisposable
{
    /// <summary>
    /// Up to <paramref name="length"/> bytes at <paramref name="offset"/>; fewer past the end, none
    /// before the start (offsets come from the image's own tables, which may say anything).
    /// </summary>
    public byte[] Read(long offset, int length) => offset < 0 || length <= 0 ? [] : ReadAt(offset, length);

    /// <summary>Up to <paramref name="length"/> (positive) bytes at <paramref name="offset"/> (not negative).</summary>
    protected abstract byte[] ReadAt(long offset, int length);

    public virtual void Dispose()
    {
    }

    /// <summary>The guest's bytes of <paramref name="path"/>; null when its format hides them (see <see cref="Qcow2Disk"/>).</summary>
    public static VirtualDisk? Open(string path, ImageFormat format) => format switch
    {
        ImageFormat.Iso or ImageFormat.Raw => new RawDisk(path),
        ImageFormat.Qcow2 => Qcow2Disk.Open(path),
        _ => null, // VMDK: LinuxKit makes only BIOS ones; the default stays BIOS
    };

    /// <summary>Bytes held in memory (tests).</summary>
    public static VirtualDisk Of(byte[] bytes) => new MemoryDisk(bytes);

    private sealed class MemoryDisk(byte[] bytes) : VirtualDisk
    {
        protected override byte[] ReadAt(long offset, int length) =>
            offset >= bytes.Length ? [] : bytes.AsSpan((int)offset, (int)Math.Min(length, bytes.Length - offset)).ToArray();
    }

    private sealed class RawDisk(string path) : VirtualDisk
    {
        private readonly FileStream _file = new(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);

        protected override byte[] ReadAt(long offset, int length) => ReadFile(_file, offset, length);

        public override void Dispose()
        {
            _file.Dispose();
            base.Dispose();
        }
    }

    internal static byte[] ReadFile(Stream file, long offset, int length)
    {
        if (offset < 0 || length <= 0 || offset >= file.Length) return [];
        var buffer = new byte[(int)Math.Min(length, file.Length - offset)];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }
}
