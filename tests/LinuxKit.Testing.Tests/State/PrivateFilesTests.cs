using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tests.State;

public sealed class PrivateFilesTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("lkt-private-files-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void A_sparse_copy_has_the_same_bytes_keeps_the_holes_and_is_private()
    {
        var source = Path.Combine(_folder, "memory.ram");
        var data = new byte[64 * 1024];
        Random.Shared.NextBytes(data);
        using (var file = File.Create(source))
        {
            file.SetLength(64L * 1024 * 1024);
            file.Position = 4096;
            file.Write(data);
            file.Position = 40L * 1024 * 1024;
            file.Write(data);
        }
        var target = Path.Combine(_folder, "copy.ram");

        PrivateFiles.CopySparse(source, target);

        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(target));
        Assert.Equal(PrivateFiles.FileMode, File.GetUnixFileMode(target));
        // Two 64 KiB runs of data in 64 MiB: allocated blocks stay far below the length.
        Assert.InRange(AllocatedBytes(target), 1, 8L * 1024 * 1024);
    }

    [Fact]
    public void A_sparse_copy_of_a_file_that_is_all_hole_is_all_hole()
    {
        var source = Path.Combine(_folder, "empty.ram");
        using (var file = File.Create(source)) file.SetLength(16L * 1024 * 1024);
        var target = Path.Combine(_folder, "copy.ram");

        PrivateFiles.CopySparse(source, target);

        Assert.Equal(16L * 1024 * 1024, new FileInfo(target).Length);
        Assert.All(File.ReadAllBytes(target), b => Assert.Equal(0, b));
    }

    [Fact]
    public void A_file_renamed_while_open_keeps_receiving_what_is_written_through_its_open_handle()
    {
        var running = Path.Combine(_folder, "disk.qcow2");
        var own = Path.Combine(_folder, "vm-disk.qcow2");
        using var writer = new FileStream(running, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        writer.Write("before "u8);
        writer.Flush();

        PrivateFiles.Rename(running, own);
        writer.Write("after"u8);
        writer.Flush();

        Assert.False(File.Exists(running));
        Assert.Equal("before after", File.ReadAllText(own));
    }

    [Fact]
    public void A_rename_onto_an_existing_file_is_refused_and_changes_neither()
    {
        var source = Path.Combine(_folder, "a");
        var target = Path.Combine(_folder, "b");
        File.WriteAllText(source, "a");
        File.WriteAllText(target, "b");

        var refused = Assert.Throws<IOException>(() => PrivateFiles.Rename(source, target));

        Assert.Contains(target, refused.Message, StringComparison.Ordinal);
        Assert.Equal("a", File.ReadAllText(source));
        Assert.Equal("b", File.ReadAllText(target));
    }

    [Fact]
    public void A_rename_of_a_missing_file_says_which_and_why()
    {
        var refused = Assert.Throws<IOException>(() => PrivateFiles.Rename(Path.Combine(_folder, "missing"), Path.Combine(_folder, "b")));
        Assert.Contains("missing", refused.Message, StringComparison.Ordinal);
        Assert.Contains("No such file", refused.Message, StringComparison.OrdinalIgnoreCase);
    }

    private static long AllocatedBytes(string path)
    {
        var du = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("du", ["-k", path]) { RedirectStandardOutput = true })!;
        var output = du.StandardOutput.ReadToEnd();
        du.WaitForExit();
        return long.Parse(output.Split('\t')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
    }
}
