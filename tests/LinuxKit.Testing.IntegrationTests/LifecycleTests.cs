using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;

namespace LinuxKit.Testing.IntegrationTests;

[Trait("Category", "Integration")]
public class LifecycleTests
{
    [Fact]
    public async Task Detached_vm_is_listed_used_and_stopped_by_a_second_process()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(scratch.State, "run", "--detach", TestEnvironment.Image("kernel"));
        var (id, pid) = await TestEnvironment.ReadStartedVmAsync(host);
        await host.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(host.ExitCode == 0, await host.StandardError.ReadToEndAsync());

        // The process that started it is gone; the VM is not.
        Assert.True(TestEnvironment.IsRunning(pid));
        var listed = Assert.Single(await scratch.Manager.ListAsync());
        Assert.Equal(id, listed.Id);
        Assert.Equal(ContainerStatus.Running, listed.Status);

        var echo = await scratch.Manager.ExecAsync(id, ["echo", "from another process"]);
        Assert.Equal("from another process\n", echo.Stdout);
        using (var logs = new StreamReader(await scratch.Manager.LogsAsync(id, follow: false)))
            Assert.Contains("Welcome to LinuxKit", await logs.ReadToEndAsync(), StringComparison.Ordinal);

        await scratch.Manager.StopAsync(id);
        Assert.False(TestEnvironment.IsRunning(pid));
        Assert.Equal(ContainerStatus.Stopped, Assert.Single(await scratch.Manager.ListAsync()).Status);
    }

    [Fact]
    public async Task Vm_of_an_owner_whose_whole_process_group_gets_sigterm_is_stopped()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(scratch.State, ownProcessGroup: true, "run", TestEnvironment.Image("kernel"));
        var (_, pid) = await TestEnvironment.ReadStartedVmAsync(host);
        Assert.True(TestEnvironment.IsRunning(pid));

        // What a CI runner cancelling a job, or Ctrl-C in a terminal, does: one signal to every
        // process of the group, the watchdog included. setsid made the host the group's leader.
        using (var kill = Process.Start("kill", ["-TERM", "--", "-" + host.Id.ToString(CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        await host.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));

        await TestEnvironment.AssertNoQemuLeftAsync(scratch.State);
    }

    [Fact]
    public async Task Vm_whose_folder_was_deleted_is_still_stopped_when_its_owner_dies()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(scratch.State, "run", TestEnvironment.Image("kernel"));
        var (id, _) = await TestEnvironment.ReadStartedVmAsync(host);

        // As a test's temp-folder cleanup does when the test failed before disposing its VM:
        // the pid file goes with the folder.
        Directory.Delete(Path.Combine(scratch.State, "vms", id), recursive: true);
        host.Kill(entireProcessTree: true);
        await host.WaitForExitAsync();

        await TestEnvironment.AssertNoQemuLeftAsync(scratch.State);
    }

    [Fact]
    public async Task Vm_of_an_owner_killed_with_sigkill_with_its_process_tree_is_stopped_and_its_overlay_removed()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(scratch.State, "run", TestEnvironment.Image("qcow2"));
        var (id, pid) = await TestEnvironment.ReadStartedVmAsync(host);
        var overlay = Path.Combine(scratch.State, "vms", id, "disk.qcow2");
        Assert.True(TestEnvironment.IsRunning(pid));
        Assert.True(File.Exists(overlay));

        // SIGKILL to the host and every child it has, as dotnet test --blame-hang does to a hung
        // test host: no finalizers, no DisposeAsync, and no child of the host survives.
        host.Kill(entireProcessTree: true);
        await host.WaitForExitAsync();

        await TestEnvironment.AssertNoQemuLeftAsync(scratch.State);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (File.Exists(overlay) && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.False(File.Exists(overlay));
        Assert.Equal(ContainerStatus.Stopped, Assert.Single(await scratch.Manager.ListAsync()).Status);
    }

    [Fact]
    public async Task Disposing_the_manager_stops_its_vms_and_removes_their_folders()
    {
        var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
        await scratch.Manager.DisposeAsync();
        Assert.False(TestEnvironment.IsRunning(vm.Pid));
        Assert.False(Directory.Exists(Path.Combine(scratch.State, "vms", vm.Id)));
        await scratch.DisposeAsync();
    }

    [Fact]
    public async Task Cancelling_a_boot_stops_the_vm()
    {
        await using var scratch = new ScratchManager();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(1.5));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small, cancel.Token));
        Assert.Empty(TestEnvironment.QemuProcessesUnder(scratch.State));
    }

    [Fact]
    public async Task Qemu_refusing_to_start_fails_at_once_with_its_exit_code_and_message()
    {
        await using var scratch = new ScratchManager();
        var e = await Assert.ThrowsAsync<LinuxKitException>(() =>
            scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { Memory = 1024 * 1024, Cpus = 255 }));
        Assert.Contains("exit code 1", e.Message, StringComparison.Ordinal);
        Assert.Empty(TestEnvironment.QemuProcessesUnder(scratch.State));
    }

    [Fact]
    public async Task Corrupt_qcow2_is_refused_before_anything_starts_naming_the_file()
    {
        using var dir = new TempDirectory("lkt-corrupt-");
        var path = Path.Combine(dir.Path, "corrupt.qcow2");
        var bytes = new byte[4096];
        new byte[] { 0x51, 0x46, 0x49, 0xFB, 0, 0, 0, 3 }.CopyTo(bytes, 0);
        Random.Shared.NextBytes(bytes.AsSpan(8, 200));
        await File.WriteAllBytesAsync(path, bytes);

        await using var scratch = new ScratchManager();
        var e = await Assert.ThrowsAsync<LinuxKitException>(() => scratch.Manager.RunAsync(path, ScratchManager.Small));
        Assert.Contains($"Qcow2 image '{path}' cannot boot", e.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(path));
        Assert.Empty(await scratch.Manager.ListAsync()); // refused before any folder was taken
    }

    [Fact]
    public async Task Ssh_port_in_use_is_refused_naming_the_port()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        await using var scratch = new ScratchManager();
        var e = await Assert.ThrowsAsync<LinuxKitException>(() =>
            scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { SshPort = port }));
        Assert.Contains($"port {port}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_on_an_unknown_vm_names_it()
    {
        await using var scratch = new ScratchManager();
        var e = await Assert.ThrowsAsync<LinuxKitException>(() => scratch.Manager.ExecAsync("deadbeef", ["true"]));
        Assert.Contains("deadbeef", e.Message, StringComparison.Ordinal);
    }
}
