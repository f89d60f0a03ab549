using System.Text;

namespace LinuxKit.Testing.IntegrationTests;

[Trait("Category", "Integration")]
public class BootTests
{
    [Theory]
    [InlineData("kernel")]
    [InlineData("iso")]
    [InlineData("raw")]
    [InlineData("qcow2")]
    [InlineData("vmdk")]
    public async Task Each_format_boots_runs_commands_logs_and_stops_leaving_the_image_unchanged(string format)
    {
        var image = TestEnvironment.Image(format);
        var before = TestEnvironment.Hashes(image);
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;

        var vm = await manager.RunAsync(image, ScratchManager.Small);
        Assert.Equal(ContainerStatus.Running, vm.Status);
        Assert.Matches("^[0-9a-f]{8}$", vm.Id);
        Assert.True(TestEnvironment.IsRunning(vm.Pid));

        var uname = await manager.ExecAsync(vm.Id, ["uname", "-r"]);
        Assert.Equal(0, uname.ExitCode);
        Assert.Contains("cloud-amd64", uname.Stdout, StringComparison.Ordinal);

        var quoted = await manager.ExecAsync(vm.Id, ["echo", "a b; rm -rf /"]);
        Assert.Equal("a b; rm -rf /\n", quoted.Stdout);

        var failing = await manager.ExecAsync(vm.Id, ["sh", "-c", "echo oops >&2; exit 3"]);
        Assert.Equal(3, failing.ExitCode);
        Assert.Equal("oops\n", failing.Stderr);

        using (var logs = new StreamReader(await manager.LogsAsync(vm.Id, follow: false), Encoding.UTF8))
        {
            Assert.Contains("Welcome to LinuxKit", await logs.ReadToEndAsync(), StringComparison.Ordinal);
        }

        await manager.StopAsync(vm.Id);
        Assert.False(TestEnvironment.IsRunning(vm.Pid));
        Assert.Equal(ContainerStatus.Stopped, (await manager.ListAsync()).Single(c => c.Id == vm.Id).Status);
        Assert.Empty(TestEnvironment.QemuProcessesUnder(scratch.State));
        Assert.False(File.Exists(Path.Combine(scratch.State, "vms", vm.Id, "disk.qcow2")));
        Assert.Equal(before, TestEnvironment.Hashes(image));
    }

    [Fact]
    public async Task A_cold_kernel_boot_runs_under_qboot_with_every_cpu_and_powers_off_on_an_acpi_request()
    {
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;

        var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { WarmStart = false, Cpus = 2 });

        // qboot's SMBIOS names its version 0.1 (SeaBIOS names its own release).
        Assert.Equal("0.1\n", (await manager.ExecAsync(vm.Id, ["cat", "/sys/class/dmi/id/bios_version"])).Stdout);
        Assert.Equal("2\n", (await manager.ExecAsync(vm.Id, ["nproc"])).Stdout);
        await manager.StopAsync(vm.Id, StopMode.Graceful);
        Assert.Equal(0, Assert.Single(await manager.ListAsync()).ExitCode);
    }

    [Theory]
    [InlineData("iso")]
    [InlineData("qcow2")]
    [InlineData("raw")]
    public async Task By_default_an_image_whose_boot_loader_only_starts_its_kernel_is_booted_directly_with_the_loaders_command_line_and_disks_cold_and_warm(string format)
    {
        var image = TestEnvironment.Image(format);
        var before = TestEnvironment.Hashes(image);
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;
        const string Seen = "cat /proc/cmdline; ls /sys/block; cat /sys/class/dmi/id/bios_version";

        var throughFirmware = await manager.RunAsync(image, ScratchManager.Small with { WarmStart = false, DirectKernelBoot = false });
        var firmwareSaw = (await manager.ExecAsync(throughFirmware.Id, ["sh", "-c", Seen])).Stdout.Split('\n');
        await manager.StopAsync(throughFirmware.Id);
        var cold = await manager.RunAsync(image, ScratchManager.Small with { WarmStart = false });
        var coldSaw = (await manager.ExecAsync(cold.Id, ["sh", "-c", Seen])).Stdout.Split('\n');
        await manager.StopAsync(cold.Id);
        var template = await manager.RunAsync(image, ScratchManager.Small); // makes the warm-start template
        await manager.StopAsync(template.Id);
        var warm = await manager.RunAsync(image, ScratchManager.Small);
        var warmSaw = (await manager.ExecAsync(warm.Id, ["sh", "-c", Seen])).Stdout.Split('\n');

        // As ISOLINUX/SYSLINUX passes it, with the same disks; only the firmware differs: qboot.
        Assert.StartsWith("BOOT_IMAGE=/kernel initrd=/initrd.img ", firmwareSaw[0], StringComparison.Ordinal);
        Assert.Equal(firmwareSaw[..^2], coldSaw[..^2]);
        Assert.NotEqual("0.1", firmwareSaw[^2]);
        Assert.Equal("0.1", coldSaw[^2]);
        // The clone runs its template's boot: the same command line and disks.
        Assert.NotNull(warm.WarmStartTemplate);
        Assert.Equal(firmwareSaw[..^2], warmSaw[..^2]);
        await manager.StopAsync(warm.Id);
        Assert.Equal(before, TestEnvironment.Hashes(image));
    }

    [Fact]
    public async Task By_default_a_vmdk_whose_files_are_not_read_boots_through_its_firmware_and_boot_loader()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("vmdk"), ScratchManager.Small with { WarmStart = false });

        Assert.StartsWith("BOOT_IMAGE=/kernel initrd=/initrd.img ", (await scratch.Manager.ExecAsync(vm.Id, ["cat", "/proc/cmdline"])).Stdout, StringComparison.Ordinal);
        Assert.NotEqual("0.1\n", (await scratch.Manager.ExecAsync(vm.Id, ["cat", "/sys/class/dmi/id/bios_version"])).Stdout);
    }

    [Fact]
    public async Task Two_vms_boot_from_one_qcow2_at_once()
    {
        var image = TestEnvironment.Image("qcow2");
        var before = TestEnvironment.Hashes(image);
        await using var scratch = new ScratchManager();

        var vms = await Task.WhenAll(
            scratch.Manager.RunAsync(image, ScratchManager.Small with { Name = "first" }),
            scratch.Manager.RunAsync(image, ScratchManager.Small with { Name = "second" }));
        Assert.NotEqual(vms[0].SshPort, vms[1].SshPort);

        // Each VM writes to its own overlay: a sector written in one is not in the other.
        // Sector 100 lies in the gap before the first partition.
        var write = await scratch.Manager.ExecAsync("first", ["sh", "-c", "echo overlay-marker | dd of=/dev/vda bs=512 seek=100 conv=notrunc,fsync"]);
        Assert.True(write.ExitCode == 0, write.Stderr);
        const string readSector = "dd if=/dev/vda bs=512 skip=100 count=1 2>/dev/null | tr -d '\\000'";
        Assert.Contains("overlay-marker", (await scratch.Manager.ExecAsync("first", ["sh", "-c", readSector])).Stdout, StringComparison.Ordinal);
        var other = await scratch.Manager.ExecAsync("second", ["sh", "-c", readSector]);
        Assert.Equal(0, other.ExitCode);
        Assert.DoesNotContain("overlay-marker", other.Stdout, StringComparison.Ordinal);

        await Task.WhenAll(vms.Select(v => scratch.Manager.StopAsync(v.Id)));
        Assert.Equal(before, TestEnvironment.Hashes(image));
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task Commands_are_isolated_from_each_other_and_may_run_in_parallel(string guest)
    {
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;
        var vm = await manager.RunAsync(TestEnvironment.GuestImage(guest), ScratchManager.Small);

        // Shell builtins reach the guest's shell as they are: none may change the next command.
        var home = (await manager.ExecAsync(vm.Id, ["pwd"])).Stdout;
        Assert.Equal(5, (await manager.ExecAsync(vm.Id, ["exit", "5"])).ExitCode);
        await manager.ExecAsync(vm.Id, ["cd", "/tmp"]);
        await manager.ExecAsync(vm.Id, ["export", "LEAK=1"]);
        Assert.Equal(home, (await manager.ExecAsync(vm.Id, ["pwd"])).Stdout);
        Assert.Equal(0, (await manager.ExecAsync(vm.Id, ["sh", "-c", "[ -z \"$LEAK\" ]"])).ExitCode);

        Assert.Equal(1, (await manager.ExecAsync(vm.Id, ["false"])).ExitCode);
        Assert.Equal("abc", (await manager.ExecAsync(vm.Id, ["printf", "abc"])).Stdout);
        Assert.Equal("", (await manager.ExecAsync(vm.Id, ["cat"])).Stdout); // stdin is empty, not the next command

        var results = await Task.WhenAll(Enumerable.Range(0, 10).Select(i =>
            manager.ExecAsync(vm.Id, ["sh", "-c", $"sleep 0.$((RANDOM % 3)); echo out{i}; echo err{i} >&2; exit {i}"])));
        for (var i = 0; i < results.Length; i++)
        {
            Assert.Equal($"out{i}\n", results[i].Stdout);
            Assert.Equal($"err{i}\n", results[i].Stderr);
            Assert.Equal(i, results[i].ExitCode);
        }
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task Commands_and_reads_cancelled_on_a_paused_guest_run_to_their_end_there_and_the_next_commands_succeed(string guest)
    {
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;
        var vm = await manager.RunAsync(TestEnvironment.GuestImage(guest), ScratchManager.Small);
        await manager.WriteFileAsync(vm.Id, "/tmp/data", new MemoryStream(new byte[200_000]), UnixFileMode.UserRead | UnixFileMode.UserWrite);

        // Closing the channel of a cancelled command let its process exit while new channels
        // started after the resume, which dropbear failed in about one round of ten (see
        // SshSession); several rounds give that race its chances. The old code failed here
        // sooner: its cancelled read waited for SSH.NET's open on the paused guest.
        for (var round = 0; round < 6; round++)
        {
            await manager.PauseAsync(vm.Id);
            using (var shortly = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
            {
                var exec = manager.ExecAsync(vm.Id, ["touch", $"/tmp/ran-{round}"], shortly.Token);
                var read = manager.ReadFileAsync(vm.Id, "/tmp/data", shortly.Token);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => exec);
                await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read);
            }
            await manager.ResumeAsync(vm.Id);

            var results = await Task.WhenAll(Enumerable.Range(0, 3).Select(i => manager.ExecAsync(vm.Id, ["echo", $"{round}.{i}"])));
            Assert.Equal(Enumerable.Range(0, 3).Select(i => $"{round}.{i}\n"), results.Select(r => r.Stdout));
            Assert.Equal(200_000, (await manager.ReadFileAsync(vm.Id, "/tmp/data")).Length);
            var ran = await manager.ExecAsync(vm.Id, ["sh", "-c", $"for i in $(seq 50); do [ -e /tmp/ran-{round} ] && exit 0; sleep 0.2; done; exit 1"]);
            Assert.True(ran.ExitCode == 0, $"the cancelled command of round {round} did not run in the guest");
        }

        // A copy whose source breaks off (a stream of unknown length) lands nothing either.
        await Assert.ThrowsAsync<IOException>(() => manager.WriteFileAsync(vm.Id, "/tmp/partial", new BreakingStream(5_000), UnixFileMode.UserRead));
        Assert.Equal(1, (await manager.ExecAsync(vm.Id, ["test", "-e", "/tmp/partial"])).ExitCode);
    }

    // Not seekable; gives some bytes, then fails like a dropped network stream.
    private sealed class BreakingStream(int bytesBeforeFailing) : Stream
    {
        private int _left = bytesBeforeFailing;

        public override int Read(byte[] buffer, int offset, int count)
        {
            if (_left == 0) throw new IOException("the source broke off");
            var n = Math.Min(count, _left);
            Array.Clear(buffer, offset, n);
            _left -= n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task Cancelled_commands_that_never_end_keep_their_channels_and_the_next_command_says_so_instead_of_hanging(string guest)
    {
        await using var scratch = new ScratchManager();
        var manager = scratch.Manager;
        var vm = await manager.RunAsync(TestEnvironment.GuestImage(guest), ScratchManager.Small);

        for (var i = 0; i < 8; i++)
        {
            using var shortly = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => manager.ExecAsync(vm.Id, ["sleep", "600"], shortly.Token));
        }

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.ExecAsync(vm.Id, ["true"]));
        Assert.Contains("cancelled them but which still run in the guest", e.Message, StringComparison.Ordinal);

        // Once those commands end (killed here over a second manager's connection), their
        // shells serve again.
        await using (var second = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = scratch.State }))
            Assert.Equal(0, (await second.ExecAsync(vm.Id, ["sh", "-c", "kill $(pidof sleep)"])).ExitCode);
        Assert.Equal("back\n", (await manager.ExecAsync(vm.Id, ["echo", "back"])).Stdout);
    }

    [Fact]
    public async Task Forwarded_port_reaches_the_guest_on_loopback()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { Ports = [new PortMapping(0, 22)] });
        var (host, guest) = Assert.Single(vm.Ports);
        Assert.Equal(22, guest);

        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, host);
        using var reader = new StreamReader(client.GetStream());
        var banner = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        Assert.StartsWith("SSH-2.0-", banner, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Following_logs_streams_until_the_vm_stops()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
        using var reader = new StreamReader(await scratch.Manager.LogsAsync(vm.Id, follow: true));
        var before = new List<string>();

        // What the guest writes while it runs comes through the open stream...
        await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "echo marker-from-exec > /dev/ttyS0"]);
        while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) is { } line)
        {
            before.Add(line);
            if (line.Contains("marker-from-exec", StringComparison.Ordinal)) break;
        }
        Assert.Contains(before, l => l.Contains("marker-from-exec", StringComparison.Ordinal));
        // ...which ends only once the VM stops.
        var rest = reader.ReadToEndAsync();
        Assert.False(rest.IsCompleted);
        await scratch.Manager.StopAsync(vm.Id);

        await rest.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains(before, l => l.Contains("Welcome to LinuxKit", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Host_folder_shared_as_a_volume_is_readable_in_the_guest()
    {
        using var shared = new TempDirectory("lkt-volume-");
        await File.WriteAllTextAsync(Path.Combine(shared.Path, "hello.txt"), "from the host");
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(
            TestEnvironment.Image("9p"),
            ScratchManager.Small with { Volumes = new Dictionary<string, string> { [shared.Path] = "/mnt/shared" } });
        var cat = await scratch.Manager.ExecAsync(vm.Id, ["cat", "/mnt/shared/hello.txt"]);
        Assert.True(cat.ExitCode == 0, cat.Stderr);
        Assert.Equal("from the host", cat.Stdout);
    }
}
