using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public sealed class ConsoleRotationTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-rotation-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void A_log_over_its_limit_moves_to_the_previous_file_and_starts_again_empty()
    {
        var log = Path.Combine(_dir.FullName, "console.log");
        File.WriteAllText(log, new string('a', 100));
        File.WriteAllText(ConsoleRotation.Previous(log), "older still");

        Assert.True(ConsoleRotation.RotateIfOver(log, limit: 50));

        Assert.Equal(0, new FileInfo(log).Length);
        Assert.Equal(new string('a', 100), File.ReadAllText(log + ".1"));
    }

    [Fact]
    public void A_log_within_its_limit_is_left_alone()
    {
        var log = Path.Combine(_dir.FullName, "console.log");
        File.WriteAllText(log, "short");

        Assert.False(ConsoleRotation.RotateIfOver(log, limit: 50));
        Assert.False(ConsoleRotation.RotateIfOver(Path.Combine(_dir.FullName, "missing.log"), limit: 50));

        Assert.Equal("short", File.ReadAllText(log));
        Assert.False(File.Exists(log + ".1"));
    }

    [Fact]
    public async Task A_writer_that_appends_goes_on_at_the_start_after_a_rotation()
    {
        var log = Path.Combine(_dir.FullName, "console.log");
        var go = Path.Combine(_dir.FullName, "go");
        // Holds the log open with O_APPEND across the rotation, as QEMU's append=on chardev does.
        using var writer = System.Diagnostics.Process.Start("sh", ["-c", "exec 3>>\"$1\"; head -c 100 /dev/zero >&3; while [ ! -e \"$2\" ]; do sleep 0.05; done; printf after >&3", "writer", log, go]);
        Assert.True(await Polling.UntilAsync(() => File.Exists(log) && new FileInfo(log).Length == 100, TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(10), CancellationToken.None));

        Assert.True(ConsoleRotation.RotateIfOver(log, limit: 50));
        await File.WriteAllTextAsync(go, "");
        await writer.WaitForExitAsync();

        Assert.Equal("after", await File.ReadAllTextAsync(log));
    }
}
