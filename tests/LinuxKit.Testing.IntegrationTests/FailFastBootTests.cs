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
    public async Task An_image_UEFI_cannot_boot_fails_when_the_firmware_falls_back_to_its_shell()
    {
        await using var scratch = new ScratchManager();
        // LinuxKit's iso-bios output has no EFI entry: under UEFI nothing on it boots.
        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => scratch.Manager.RunAsync(TestEnvironment.Image("iso"), Patient with { Firmware = Firmware.Uefi }));

        Assert.Contains("\"EFI Internal Shell\"", e.Message, StringComparison.Ordinal);
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
        Assert.Empty(TestEnvironment.QemuProcessesUnder(scratch.State));
        Assert.Equal(ContainerStatus.Error, Assert.Single(await scratch.Manager.ListAsync()).Status);
    }
}

/// <summary>RunOptions.RestrictNetwork: the guest cannot reach the host's loopback services.</summary>
[Trait("Category", "Integration")]
public class RestrictedNetworkTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_restricted_guest_cannot_reach_a_host_loopback_service_and_still_answers_over_ssh(bool restrict)
    {
        // A host service on loopback that answers each connection and closes it.
        using var service = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        service.Start();
        var port = ((System.Net.IPEndPoint)service.LocalEndpoint).Port;
        var accepted = 0;
        using var stop = new CancellationTokenSource();
        var serving = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using var client = await service.AcceptTcpClientAsync(stop.Token);
                    Interlocked.Increment(ref accepted);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { RestrictNetwork = restrict });

        // QEMU's user network shows the host's loopback to the guest as 10.0.2.2.
        var reach = await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", $"echo hello | nc -w 3 10.0.2.2 {port}"]);

        await stop.CancelAsync();
        await serving;
        Assert.Equal(restrict ? 0 : 1, Volatile.Read(ref accepted));
        Assert.Equal(restrict, reach.ExitCode != 0);
    }
}
