using System.Globalization;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// Warm start against real QEMU: the first VM of an image makes a template, later ones are
/// restored from it, and each clone is its own VM. On dropbear and on the OpenSSH guest.
/// </summary>
[Trait("Category", "Integration")]
public class WarmStartTests
{
    private static RunOptions Small => ScratchManager.Small;

    private sealed class Scratch : IAsyncDisposable
    {
        public Scratch()
        {
            Manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = State.Path, Logger = Log });
        }

        public ScratchState State { get; } = new();
        public RecordingLogger Log { get; } = new();
        public LinuxKitManager Manager { get; }

        public async ValueTask DisposeAsync()
        {
            await Manager.DisposeAsync();
            await State.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task Clones_of_one_template_differ_in_random_output_and_keep_the_hosts_clock(string guest)
    {
        await using var scratch = new Scratch();
        var image = TestEnvironment.GuestImage(guest);
        var first = await scratch.Manager.RunAsync(image, Small);
        var second = await scratch.Manager.RunAsync(image, Small);
        var template = Assert.Single(await scratch.Manager.ListTemplatesAsync());
        Assert.Equal(template.Key, first.WarmStartTemplate);
        Assert.Equal(template.Key, second.WarmStartTemplate);

        var random = new List<string>();
        foreach (var vm in new[] { first, second })
        {
            var result = await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "date -u +%s; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'"]);
            Assert.True(result.ExitCode == 0, result.Stderr);
            var lines = result.Stdout.Split('\n');
            var guestClock = long.Parse(lines[0], CultureInfo.InvariantCulture);
            Assert.InRange(guestClock - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), -2, 2);
            random.Add(lines[1]);
        }
        Assert.Equal(64, random[0].Length);
        Assert.NotEqual(random[0], random[1]);
    }

    [Fact]
    public async Task A_clone_starts_its_console_with_the_templates_boot_and_accepts_its_own_key_from_another_process()
    {
        await using var scratch = new Scratch();
        await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small); // makes the template
        using var console = new MemoryStream();
        var clone = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small with { ConsoleOutput = console });
        Assert.NotNull(clone.WarmStartTemplate);

        using (var logs = new StreamReader(await scratch.Manager.LogsAsync(clone.Id, follow: false)))
            Assert.Contains("Welcome to LinuxKit", await logs.ReadToEndAsync(), StringComparison.Ordinal);
        Assert.Contains(await scratch.Manager.ReadConsoleAsync(clone.Id), l => l.Text.Contains("Welcome to LinuxKit", StringComparison.Ordinal));

        // A second manager connects afresh, with the key the VM's record names: its own, which
        // the restore installed (the template's key is not the one handed out).
        Assert.StartsWith(Path.Combine(scratch.State.Path, "vms", clone.Id), clone.SshKeyFile, StringComparison.Ordinal);
        await using var other = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = scratch.State.Path });
        var echo = await other.ExecAsync(clone.Id, ["echo", "own key"]);
        Assert.Equal("own key\n", echo.Stdout);
    }

    [Fact]
    public async Task A_disk_image_clone_writes_to_its_own_overlay_and_leaves_the_template_and_image_alone()
    {
        await using var scratch = new Scratch();
        var image = TestEnvironment.Image("qcow2");
        var before = TestEnvironment.Hashes(image);
        var first = await scratch.Manager.RunAsync(image, Small);
        var second = await scratch.Manager.RunAsync(image, Small);
        Assert.NotNull(second.WarmStartTemplate);
        var templateDisk = Path.Combine(scratch.State.Path, "templates", second.WarmStartTemplate, "disk.qcow2");
        var templateHash = TestEnvironment.Sha256(templateDisk);

        Assert.Equal(0, (await scratch.Manager.ExecAsync(first.Id, ["sh", "-c", "dd if=/dev/urandom of=/dev/vda bs=4096 count=16 seek=1000 conv=fsync 2>/dev/null"])).ExitCode);
        await scratch.Manager.StopAsync(first.Id);
        Assert.Equal(0, (await scratch.Manager.ExecAsync(second.Id, ["true"])).ExitCode);
        Assert.Equal(templateHash, TestEnvironment.Sha256(templateDisk));
        Assert.Equal(before, TestEnvironment.Hashes(image));
    }

    private static readonly string[] TemplateFileNames = ["memory.ram", "disk.qcow2", "state.bin"];

    [Fact]
    public async Task The_first_vm_is_its_template_running_on_and_what_it_writes_in_memory_or_on_disk_reaches_no_clone()
    {
        await using var scratch = new Scratch();
        var image = TestEnvironment.Image("qcow2");
        var first = await scratch.Manager.RunAsync(image, Small);
        Assert.Contains(scratch.Log.Lines, l => l.Contains($"it runs on as VM {first.Id}", StringComparison.Ordinal));
        var template = Assert.Single(await scratch.Manager.ListTemplatesAsync());
        Assert.Equal(template.Key, first.WarmStartTemplate);
        var templateFolder = Path.Combine(scratch.State.Path, "templates", template.Key);
        var templateFiles = TemplateFileNames.Select(f => Path.Combine(templateFolder, f)).ToList();
        var templateHashes = templateFiles.Select(TestEnvironment.Sha256).ToList();

        // In RAM (tmpfs), and on the disk both in its file system's page cache and on the device.
        var written = await scratch.Manager.ExecAsync(first.Id, ["sh", "-c", "echo first > /run/first-vm && dd if=/dev/urandom of=/dev/vda bs=4096 count=16 seek=1000 conv=fsync 2>/dev/null && dd if=/dev/vda bs=4096 count=16 skip=1000 2>/dev/null | md5sum"]);
        Assert.True(written.ExitCode == 0, written.Stderr);
        var second = await scratch.Manager.RunAsync(image, Small);
        Assert.Equal(template.Key, second.WarmStartTemplate);
        var seen = await scratch.Manager.ExecAsync(second.Id, ["sh", "-c", "cat /run/first-vm 2>/dev/null; dd if=/dev/vda bs=4096 count=16 skip=1000 2>/dev/null | md5sum"]);
        Assert.Equal(0, seen.ExitCode);
        Assert.DoesNotContain("first", seen.Stdout, StringComparison.Ordinal);
        Assert.NotEqual(written.Stdout, seen.Stdout);
        Assert.Equal(templateHashes, templateFiles.Select(TestEnvironment.Sha256).ToList());

        // The RAM it kept is its own file, gone with it.
        var ownMemory = Path.Combine(scratch.State.Path, "vms", first.Id, "memory.ram");
        Assert.True(File.Exists(ownMemory));
        await scratch.Manager.StopAsync(first.Id);
        Assert.False(File.Exists(ownMemory));
        Assert.Equal(0, (await scratch.Manager.ExecAsync(second.Id, ["true"])).ExitCode);
    }

    [Fact]
    public async Task Four_vms_started_at_once_share_one_template_made_once_and_run_and_stop_in_parallel()
    {
        await using var scratch = new Scratch();
        var vms = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small)));
        var template = Assert.Single(await scratch.Manager.ListTemplatesAsync());
        Assert.All(vms, vm => Assert.Equal(template.Key, vm.WarmStartTemplate));
        Assert.Single(scratch.Log.Lines, l => l.StartsWith($"Warm-start template {template.Key} made", StringComparison.Ordinal));

        var echoes = await Task.WhenAll(vms.Select((vm, i) => scratch.Manager.ExecAsync(vm.Id, ["echo", $"clone {i}"])));
        Assert.Equal(Enumerable.Range(0, 4).Select(i => $"clone {i}\n"), echoes.Select(e => e.Stdout));
        await Task.WhenAll(vms.Select(vm => scratch.Manager.StopAsync(vm.Id)));
        Assert.All(await scratch.Manager.ListAsync(), vm => Assert.Equal(ContainerStatus.Stopped, vm.Status));
        Assert.True(template.SizeOnDisk > 0 && template.SizeOnDisk < 256L * 1024 * 1024 + 64L * 1024 * 1024);
    }

    [Fact]
    public async Task Two_processes_starting_the_same_image_at_once_make_one_template_and_both_restore_from_it()
    {
        await using var scratch = new Scratch();
        using var first = TestEnvironment.StartHost(scratch.State.Path, "run", "--detach", TestEnvironment.Image("kernel"));
        using var second = TestEnvironment.StartHost(scratch.State.Path, "run", "--detach", TestEnvironment.Image("kernel"));
        var ids = new[] { (await TestEnvironment.ReadStartedVmAsync(first)).Id, (await TestEnvironment.ReadStartedVmAsync(second)).Id };

        var template = Assert.Single(await scratch.Manager.ListTemplatesAsync());
        foreach (var id in ids)
        {
            Assert.Equal(template.Key, (await scratch.Manager.InspectAsync(id)).WarmStartTemplate);
            await scratch.Manager.StopAsync(id);
        }
    }

    [Fact]
    public async Task A_rebuilt_image_gets_a_new_template_and_the_stale_one_is_removed()
    {
        await using var scratch = new Scratch();
        using var copy = new TempDirectory("lkt-rebuilt-");
        foreach (var file in TestEnvironment.ImageFiles(TestEnvironment.Image("kernel")))
            File.Copy(file, Path.Combine(copy.Path, Path.GetFileName(file)));
        var image = Path.Combine(copy.Path, "linuxkit-ssh");

        var before = await scratch.Manager.RunAsync(image, Small);
        // A rebuild writes the kernel anew: the template made from the old one must not be used.
        await File.WriteAllBytesAsync(image + "-kernel", await File.ReadAllBytesAsync(image + "-kernel"));
        File.SetLastWriteTimeUtc(image + "-kernel", DateTime.UtcNow.AddSeconds(1));
        var after = await scratch.Manager.RunAsync(image, Small);

        Assert.NotNull(after.WarmStartTemplate);
        Assert.NotEqual(before.WarmStartTemplate, after.WarmStartTemplate);
        Assert.Equal([after.WarmStartTemplate], (await scratch.Manager.ListTemplatesAsync()).Select(t => t.Key));
        Assert.Equal(0, (await scratch.Manager.ExecAsync(before.Id, ["true"])).ExitCode); // a clone of a removed template runs on
    }

    [Fact]
    public async Task A_damaged_template_means_a_cold_boot_with_a_warning_and_a_new_template_next_time()
    {
        await using var scratch = new Scratch();
        var first = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        var state = Path.Combine(scratch.State.Path, "templates", first.WarmStartTemplate!, "state.bin");
        var garbage = new byte[new FileInfo(state).Length];
        new Random(7).NextBytes(garbage);
        await File.WriteAllBytesAsync(state, garbage); // the same length: only QEMU can tell

        var cold = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        Assert.Null(cold.WarmStartTemplate);
        Assert.Contains(scratch.Log.Lines, l => l.Contains("boots cold: it could not be restored from warm-start template", StringComparison.Ordinal));
        Assert.Equal(0, (await scratch.Manager.ExecAsync(cold.Id, ["true"])).ExitCode);
        Assert.Empty(await scratch.Manager.ListTemplatesAsync());

        var next = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        Assert.NotNull(next.WarmStartTemplate);
    }

    [Fact]
    public async Task A_process_killed_while_making_a_template_leaves_nothing_a_later_run_uses()
    {
        await using var scratch = new Scratch();
        var templates = Path.Combine(scratch.State.Path, "templates");
        using (var host = TestEnvironment.StartHost(scratch.State.Path, "run", TestEnvironment.Image("kernel")))
        {
            // Killed while the template VM boots: its RAM file exists, its record does not.
            Assert.True(await Polling.UntilAsync(
                () => Directory.Exists(templates) && Directory.EnumerateFiles(templates, "memory.ram", SearchOption.AllDirectories).Any(),
                TimeSpan.FromMilliseconds(50), TimeSpan.FromMinutes(1), CancellationToken.None));
            host.Kill();
            await host.WaitForExitAsync();
        }
        // The watchdog ends the template's QEMU.
        await TestEnvironment.AssertNoQemuLeftAsync(scratch.State.Path);
        Assert.Empty(await scratch.Manager.ListTemplatesAsync());

        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        Assert.NotNull(vm.WarmStartTemplate);
        Assert.Equal(0, (await scratch.Manager.ExecAsync(vm.Id, ["true"])).ExitCode);
    }

    [Fact]
    public async Task Warm_start_turned_off_boots_cold_and_makes_no_template()
    {
        await using var scratch = new Scratch();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small with { WarmStart = false });
        Assert.Null(vm.WarmStartTemplate);
        Assert.Empty(await scratch.Manager.ListTemplatesAsync());

        // And for a whole process, by the environment variable.
        using var host = TestEnvironment.StartHost(scratch.State.Path, new Dictionary<string, string> { [LinuxKitEnvironment.WarmStart] = "0" }, "run", "--detach", TestEnvironment.Image("kernel"));
        var (id, _) = await TestEnvironment.ReadStartedVmAsync(host);
        Assert.Null((await scratch.Manager.InspectAsync(id)).WarmStartTemplate);
        Assert.Empty(await scratch.Manager.ListTemplatesAsync());
        await scratch.Manager.StopAsync(id);
    }

    [Fact]
    public async Task A_removed_template_is_made_again_by_the_next_vm()
    {
        await using var scratch = new Scratch();
        var first = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        await scratch.Manager.RemoveTemplateAsync(first.WarmStartTemplate!);
        Assert.Empty(await scratch.Manager.ListTemplatesAsync());
        var second = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), Small);
        Assert.Equal(first.WarmStartTemplate, second.WarmStartTemplate);
        Assert.Equal(2, scratch.Log.Lines.Count(l => l.StartsWith("Warm-start template", StringComparison.Ordinal) && l.Contains(" made in ", StringComparison.Ordinal)));
        await Assert.ThrowsAsync<LinuxKitException>(() => scratch.Manager.RemoveTemplateAsync("../vms"));
    }
}
