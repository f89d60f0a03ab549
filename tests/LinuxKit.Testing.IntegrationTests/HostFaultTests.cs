
namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// Faults of the host around running VMs: QEMU frozen with SIGSTOP when it is stopped, the VM's
/// folder deleted under it, the QEMU binary replaced while VMs run. Each ends in a clear
/// outcome, and nothing is left running.
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "FaultInjection")]
public class HostFaultTests
{
    [Theory]
    [InlineData(StopMode.Fast)]
    [InlineData(StopMode.Graceful)]
    public async Task Qemu_frozen_with_sigstop_is_still_stopped_by_its_escalation(StopMode mode)
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);

        // Frozen: its control socket accepts and never answers, SIGTERM waits for a SIGCONT
        // that never comes; only SIGKILL ends it.
        TestEnvironment.Signal("STOP", vm.Pid);
        // Bounded by the stop's own limits (control channel, power-off timeout, signals); the
        // wait turns a hang into a failure.
        await scratch.Manager.StopAsync(vm.Id, mode).WaitAsync(TimeSpan.FromMinutes(1));

        var stopped = await scratch.Manager.InspectAsync(vm.Id);
        Assert.Equal(ContainerStatus.Stopped, stopped.Status);
        Assert.Equal(137, stopped.ExitCode);
        Assert.False(TestEnvironment.IsRunning(vm.Pid));
    }

    [Fact]
    public async Task A_vm_whose_folder_is_deleted_under_it_is_refused_by_name_and_its_owner_still_stops_its_qemu()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);

        Directory.Delete(Path.Combine(scratch.State, "vms", vm.Id), recursive: true);

        var exec = await Assert.ThrowsAsync<LinuxKitException>(() => scratch.Manager.ExecAsync(vm.Id, ["true"]));
        Assert.Contains($"No VM with id or name '{vm.Id}'", exec.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(await scratch.Manager.ListAsync(), v => v.Id == vm.Id);
        // Its record is gone, its process is not: the manager that started it knows it still.
        await scratch.Manager.StopAsync(vm.Id);
        await TestEnvironment.AssertEventuallyAsync(() => Task.FromResult(!TestEnvironment.IsRunning(vm.Pid)), "QEMU of the VM whose folder was deleted ended");
    }

    [Fact]
    public async Task A_qemu_binary_replaced_while_vms_run_leaves_them_usable_and_stoppable_and_later_vms_get_a_new_template()
    {
        await using var state = new ScratchState();
        var bin = Directory.CreateTempSubdirectory("lkt-qemu-").FullName;
        try
        {
            // The system's QEMU cannot be replaced under other tests, and a copy elsewhere
            // finds none of its modules: the binary the SDK is given is a script that runs it.
            var qemu = Path.Combine(bin, "qemu-system-x86_64");
            void Install()
            {
                File.WriteAllText(qemu, "#!/bin/sh\nexec /usr/bin/qemu-system-x86_64 \"$@\"\n");
                File.SetUnixFileMode(qemu, (UnixFileMode)0b111_101_101);
            }
            Install();
            await using var manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = state.Path, QemuPath = qemu });
            var first = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
            var running = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
            Assert.NotNull(running.WarmStartTemplate);

            // A package upgrade: a new file under the old name, same size and content (a new
            // inode and change time); the running QEMUs keep the old one open.
            File.Delete(qemu);
            Install();

            Assert.Equal("alive\n", (await manager.ExecAsync(running.Id, ["echo", "alive"])).Stdout);
            var later = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
            Assert.Equal("later\n", (await manager.ExecAsync(later.Id, ["echo", "later"])).Stdout);
            Assert.NotEqual(running.WarmStartTemplate, later.WarmStartTemplate); // never a template the old binary saved
            foreach (var vm in new[] { first, running, later })
            {
                await manager.StopAsync(vm.Id);
                Assert.False(TestEnvironment.IsRunning(vm.Pid));
            }
        }
        finally
        {
            Directory.Delete(bin, recursive: true);
        }
    }
}
