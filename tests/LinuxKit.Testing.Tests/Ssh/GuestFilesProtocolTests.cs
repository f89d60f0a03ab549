using System.Diagnostics;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

/// <summary>
/// The scripts that copy files run under this machine's POSIX shell exactly as a guest runs
/// them: what lands, what is refused and which exit code says so.
/// </summary>
public sealed class GuestFilesProtocolTests : IDisposable
{
    private const UnixFileMode Mode640 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
    private readonly string _folder = Directory.CreateTempSubdirectory("guest-files-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task A_whole_copy_lands_with_its_mode_and_creates_missing_folders()
    {
        var target = Path.Combine(_folder, "a b", "it's", "file");
        var (exit, _, error) = await RunAsync(Write(target, 5), "hello"u8.ToArray());
        Assert.True(exit == 0, error);
        Assert.Equal("hello", await File.ReadAllTextAsync(target));
        Assert.Equal(Mode640, File.GetUnixFileMode(target));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(target)!));
    }

    [Fact]
    public async Task A_copy_that_broke_off_is_refused_and_leaves_the_old_file_and_no_partial_one()
    {
        var target = Path.Combine(_folder, "file");
        await File.WriteAllTextAsync(target, "old");
        var (exit, _, error) = await RunAsync(Write(target, 10), "short"u8.ToArray());
        Assert.Equal(GuestFiles.ShortCopy, exit);
        Assert.Contains("incomplete copy", error, StringComparison.Ordinal);
        Assert.Equal("old", await File.ReadAllTextAsync(target));
        Assert.Equal([target], Directory.GetFiles(_folder));
    }

    [Fact]
    public async Task A_file_is_read_back_whole()
    {
        var file = Path.Combine(_folder, "x");
        await File.WriteAllBytesAsync(file, [0, 1, 2, 255]);
        var (exit, output, _) = await RunAsync(GuestFiles.ReadScript(file, limit: 4));
        Assert.Equal(0, exit);
        Assert.Equal([0, 1, 2, 255], output);
    }

    [Fact]
    public async Task A_missing_file_is_a_FileNotFoundException()
    {
        var missing = Path.Combine(_folder, "missing");
        var (exit, _, error) = await RunAsync(GuestFiles.ReadScript(missing, 100));
        Assert.IsType<FileNotFoundException>(GuestFiles.ReadFailure(exit, error, missing, "vm1"));
    }

    [Fact]
    public async Task A_folder_is_refused_as_a_folder()
    {
        var (exit, _, error) = await RunAsync(GuestFiles.ReadScript(_folder, 100));
        Assert.Contains("is a folder", GuestFiles.ReadFailure(exit, error, _folder, "vm1").Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pipe_is_refused_without_being_read()
    {
        var fifo = Path.Combine(_folder, "fifo");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) await mkfifo.WaitForExitAsync();
        var (exit, _, error) = await RunAsync(GuestFiles.ReadScript(fifo, 100));
        Assert.Equal(GuestFiles.NotRegularFile, exit);
        Assert.Contains("not a regular file", GuestFiles.ReadFailure(exit, error, fifo, "vm1").Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_over_the_limit_is_refused_with_its_size_before_any_byte_is_sent()
    {
        var file = Path.Combine(_folder, "big");
        await File.WriteAllBytesAsync(file, new byte[1000]);
        var (exit, output, error) = await RunAsync(GuestFiles.ReadScript(file, limit: 999));
        Assert.Equal(GuestFiles.OverLimit, exit);
        Assert.Empty(output);
        Assert.Contains("is 1000 bytes, over the output limit", GuestFiles.ReadFailure(exit, error, file, "vm1").Message, StringComparison.Ordinal);
    }

    private static string Write(string target, long length) =>
        GuestFiles.WriteScript(target, length, Mode640, Ids("-u"), Ids("-g"));

    private static int Ids(string which)
    {
        using var id = Process.Start(new ProcessStartInfo("id", [which]) { RedirectStandardOutput = true })!;
        var text = id.StandardOutput.ReadToEnd();
        id.WaitForExit();
        return int.Parse(text.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<(int ExitCode, byte[] Output, string Error)> RunAsync(string script, byte[]? input = null)
    {
        var info = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        using var sh = Process.Start(info)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var output = new MemoryStream();
        var reading = sh.StandardOutput.BaseStream.CopyToAsync(output, timeout.Token);
        var error = sh.StandardError.ReadToEndAsync(timeout.Token);
        if (input is not null) await sh.StandardInput.BaseStream.WriteAsync(input, timeout.Token);
        sh.StandardInput.Close();
        await sh.WaitForExitAsync(timeout.Token);
        await reading;
        return (sh.ExitCode, output.ToArray(), await error);
    }
}
