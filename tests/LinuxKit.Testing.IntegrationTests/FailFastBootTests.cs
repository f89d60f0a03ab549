using System.IO.Compression;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>Boots that cannot succeed end at once with the reason, long before the boot timeout.</summary>
[Trait("Category", "Integration")]
public class FailFastBootTests
{
    // Far longer than any of these boots may take: reaching it would fail the test by its message.
    private static readonly RunOptions Patient = ScratchManager.Small with { BootTimeout = TimeSpan.FromMinutes(10) };

    [Fact]
    public async Task A_disk_with_nothing_to_boot_fails_when_the_firmware_says_no_bootable_device()
    {
        await using var scratch = new ScratchManager();
        var disk = Path.Combine(scratch.State, "empty.qcow2");
        using (var qemuImg = System.Diagnostics.Process.Start("qemu-img", ["create", "-q", "-f", "qcow2", disk, "64M"]))
            await qemuImg.WaitForExitAsync();

        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => scratch.Manager.RunAsync(disk, Patient));

        Assert.Contains("cannot boot: its console says \"No bootable device.\"", e.Message, StringComparison.Ordinal);
        Assert.Equal(ContainerStatus.Error, Assert.Single(await scratch.Manager.ListAsync()).Status);
    }

    [Fact]
    public async Task A_kernel_that_finds_no_root_fails_when_it_panics_with_the_console_tail()
    {
        await using var scratch = new ScratchManager();
        var prefix = Path.Combine(scratch.State, "broken");
        File.Copy(TestEnvironment.Image("kernel") + "-kernel", prefix + "-kernel");
        using (var initrd = new GZipStream(File.Create(prefix + "-initrd.img"), CompressionLevel.Fastest))
            initrd.Write("this is no cpio archive"u8);
        await File.WriteAllTextAsync(prefix + "-cmdline", "console=ttyS0");

        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => scratch.Manager.RunAsync(prefix, Patient));

        Assert.Contains("cannot boot: its console says", e.Message, StringComparison.Ordinal);
        Assert.Contains("Kernel panic", e.ConsoleTail, StringComparison.Ordinal);
    }
}
