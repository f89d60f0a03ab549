using System.Diagnostics;
using System.Globalization;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// A state directory on a small tmpfs of its own (mounting takes root, as CI runs, or
/// passwordless sudo), whose size a test sets and changes.
/// </summary>
public sealed class SmallDisk : IAsyncDisposable
{
    public SmallDisk(string size)
    {
        Path = Directory.CreateTempSubdirectory("lkt-full-").FullName;
        Mount("-t", "tmpfs", "-o", Options(size), "tmpfs", Path);
    }

    public string Path { get; }

    // The state directory's root must be the user's alone.
    private static string Options(string size) =>
        string.Create(CultureInfo.InvariantCulture, $"size={size},mode=0700,uid={Id("-u")},gid={Id("-g")}");

    /// <summary>Gives the file system a new size, keeping what it holds.</summary>
    public void Resize(string size) => Mount("-o", "remount," + Options(size), Path);

    private static string Id(string what)
    {
        using var id = Process.Start(new ProcessStartInfo("id", [what]) { RedirectStandardOutput = true })!;
        var text = id.StandardOutput.ReadToEnd().Trim();
        id.WaitForExit();
        return text;
    }

    private static void Mount(params string[] args)
    {
        var root = Id("-u") == "0";
        using var mount = Process.Start(new ProcessStartInfo(root ? "mount" : "sudo", root ? args : ["-n", "mount", .. args]) { RedirectStandardError = true })!;
        var error = mount.StandardError.ReadToEnd();
        mount.WaitForExit();
        if (mount.ExitCode != 0)
            throw new InvalidOperationException($"These tests mount a small tmpfs, which takes root or passwordless sudo (CI runs as root): mount {string.Join(' ', args)} failed: {error}");
    }

    public async ValueTask DisposeAsync()
    {
        await TestEnvironment.AssertNoQemuLeftAsync(Path);
        var root = Id("-u") == "0";
        using (var umount = Process.Start(root ? "umount" : "sudo", root ? ["-l", Path] : ["-n", "umount", "-l", Path])) await umount.WaitForExitAsync();
        Directory.Delete(Path, recursive: true);
    }
}

/// <summary>
/// The state directory's disk full while a VM boots, while a warm-start template is saved and
/// while a file is spooled for the guest: each fails clearly or falls back, nothing half-written
/// is used later, and once there is room again the same state directory works.
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "FaultInjection")]
public class FullDiskTests
{
    private static LinuxKitManager ManagerIn(string state) => new(new LinuxKitManagerOptions { StateDirectory = state });

    [Fact]
    public async Task A_boot_on_a_full_disk_fails_naming_the_disk_and_after_room_is_made_the_same_state_directory_boots()
    {
        await using var disk = new SmallDisk("64k");
        await using (var manager = ManagerIn(disk.Path))
        {
            var e = await Assert.ThrowsAnyAsync<LinuxKitException>(() => manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { WarmStart = false }));
            Assert.Contains("No space left on device", e.ToString(), StringComparison.Ordinal);
            Assert.All(await manager.ListAsync(), vm => Assert.NotEqual(ContainerStatus.Running, vm.Status));
        }

        disk.Resize("64m");
        await using (var manager = ManagerIn(disk.Path))
        {
            var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { WarmStart = false });
            Assert.Equal("ok\n", (await manager.ExecAsync(vm.Id, ["echo", "ok"])).Stdout);
        }
    }

    [Fact]
    public async Task A_template_that_cannot_be_saved_on_a_full_disk_leaves_a_cold_boot_and_no_half_written_template()
    {
        // Room for a VM's own files, not for a template's RAM (the guest touches more than this).
        await using var disk = new SmallDisk("24m");
        await using var manager = ManagerIn(disk.Path);

        var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);

        Assert.Null(vm.WarmStartTemplate);
        Assert.Equal("cold\n", (await manager.ExecAsync(vm.Id, ["echo", "cold"])).Stdout);
        Assert.DoesNotContain(await manager.ListTemplatesAsync(), t => t.FailureReason is null);
        Assert.DoesNotContain(Directory.EnumerateDirectories(Path.Combine(disk.Path, "templates")), d => Path.GetFileName(d).Contains(".partial-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_file_spooled_on_a_full_disk_fails_naming_the_disk_and_lands_neither_in_the_guest_nor_in_the_spool()
    {
        await using var disk = new SmallDisk("16m");
        await using var manager = ManagerIn(disk.Path);
        var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { WarmStart = false });

        // A stream that cannot seek is spooled in the state directory to learn its length.
        using var unseekable = new UnseekableStream(new byte[32 * 1024 * 1024]);
        var e = await Assert.ThrowsAnyAsync<Exception>(() => manager.WriteFileAsync(vm.Id, "/root/big", unseekable, (UnixFileMode)0b110_100_100));

        Assert.Contains("No space left on device", e.ToString(), StringComparison.Ordinal);
        Assert.IsAssignableFrom<LinuxKitException>(e);
        Assert.Equal(1, (await manager.ExecAsync(vm.Id, ["test", "-e", "/root/big"])).ExitCode);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(disk.Path, "spool")));
    }

    private sealed class UnseekableStream(byte[] content) : MemoryStream(content)
    {
        public override bool CanSeek => false;
    }
}
