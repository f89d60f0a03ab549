using System.Diagnostics;
using System.Globalization;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// Faults from outside: the hypervisor killed mid-operation, the guest's SSH server killed, a
/// paused guest stopped, hostile records planted, four processes racing for one name. Each
/// ends in a clear <see cref="LinuxKitException"/> (within 5 s where the SDK is waiting), and
/// nothing is left running.
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "FaultInjection")]
public class FaultInjectionTests
{
    private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

    private static void KillHypervisor(int pid)
    {
        using var kill = Process.Start("kill", ["-KILL", pid.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    // Waits (on the condition, not a guess of a time) until a shell test in the guest succeeds.
    private static async Task WaitInGuestAsync(ScratchManager scratch, string id, string test)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((await scratch.Manager.ExecAsync(id, ["sh", "-c", test])).ExitCode != 0)
        {
            Assert.True(DateTime.UtcNow < deadline, $"'{test}' did not succeed in the guest within 30 s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Qemu_killed_during_readiness_fails_the_boot_at_once_saying_it_stopped()
    {
        await using var scratch = new ScratchManager();
        // A cold boot: a warm-start clone whose QEMU dies is booted cold instead (as a damaged
        // template is, see WarmStartTests).
        var run = scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { WarmStart = false });
        var qemu = await WaitForBootingVmAsync(scratch.Manager);

        KillHypervisor(qemu);

        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => run.WaitAsync(Prompt));
        Assert.Contains("stopped while booting", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_killed_during_a_command_fails_the_command_saying_the_connection_broke()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
        var exec = scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "touch /tmp/started; sleep 60"]);
        await WaitInGuestAsync(scratch, vm.Id, "test -e /tmp/started");

        KillHypervisor(vm.Pid);

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => exec.WaitAsync(Prompt));
        Assert.Contains($"The SSH connection to VM {vm.Id} broke", e.Message, StringComparison.Ordinal);
        Assert.Equal(ContainerStatus.Stopped, (await scratch.Manager.InspectAsync(vm.Id)).Status);
    }

    [Fact]
    public async Task Qemu_killed_during_a_file_copy_fails_the_copy()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
        var copy = scratch.Manager.WriteFileAsync(vm.Id, "/tmp/big", new MemoryStream(new byte[64 * 1024 * 1024]), UnixFileMode.UserRead);
        // The copy is under way once its file, written beside the target, has bytes.
        await WaitInGuestAsync(scratch, vm.Id, "find /tmp -name '*big*' -size +0 | grep -q .");

        KillHypervisor(vm.Pid);

        await Assert.ThrowsAsync<LinuxKitException>(() => copy.WaitAsync(Prompt));
    }

    [Theory]
    [InlineData("dropbear", "killall -KILL dropbear")]
    [InlineData("openssh", "killall -KILL sshd")]
    public async Task The_guests_ssh_server_killed_mid_session_fails_that_call_and_the_next_connects_afresh(string guest, string kill)
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.GuestImage(guest), ScratchManager.Small);

        var during = await Assert.ThrowsAsync<LinuxKitException>(() => scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", $"sleep 0.5; {kill}; sleep 30"]).WaitAsync(Prompt));
        Assert.Contains("may or may not have run", during.Message, StringComparison.Ordinal);

        // The guest's init starts its SSH server again (busybox respawn), as a supervisor would.
        Assert.Equal("back\n", (await scratch.Manager.ExecAsync(vm.Id, ["echo", "back"])).Stdout);
    }

    [Theory]
    [InlineData(StopMode.Fast)]
    [InlineData(StopMode.Graceful)]
    public async Task A_paused_guest_is_stopped_all_the_same(StopMode mode)
    {
        await using var scratch = new ScratchState();
        await using var manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = scratch.Path, StopTimeout = TimeSpan.FromSeconds(2) });
        var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small);
        await manager.PauseAsync(vm.Id);

        await manager.StopAsync(vm.Id, mode).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(ContainerStatus.Stopped, (await manager.InspectAsync(vm.Id)).Status);
        await TestEnvironment.AssertNoQemuLeftAsync(scratch.Path);
    }

    [Fact]
    public async Task Planted_hostile_records_are_refused_and_steer_nothing()
    {
        await using var scratch = new ScratchManager();
        var store = new StateStore(scratch.State);
        var victimFile = Path.Combine(Path.GetTempPath(), $"lkt-victim-{Guid.NewGuid():N}");
        await File.WriteAllTextAsync(victimFile, "keep me");
        using var unrelated = Process.Start("sleep", "60");
        try
        {
            string Planted(string id, string fields) =>
                $"{{\"Id\": {fields}, \"Image\": \"x\", \"Format\": \"Iso\", \"Hypervisor\": \"Qemu\", \"SshUser\": \"root\", \"SshKeyFile\": \"/k\", \"Status\": \"Running\", \"Pid\": {unrelated.Id}}}".Replace("{id}", id, StringComparison.Ordinal);
            void Plant(string id, string json)
            {
                Directory.CreateDirectory(store.VmDirectory(id));
                File.WriteAllText(store.Files(id).Record, json);
            }
            Plant("0000aaa1", Planted("0000aaa1", "\"/etc\""));
            Plant("0000aaa2", Planted("0000aaa2", $"\"0000aaa2\", \"RuntimeFiles\": [\"{victimFile}\"]"));
            var identity = LinuxKit.Testing.Processes.ProcessIdentity.Of(unrelated.Id)!.Value;
            Plant("0000aaa3", Planted("0000aaa3", $"\"0000aaa3\", \"PidStartTime\": \"{identity.StartTime}\"").Replace("\"Status\": \"Running\"", "\"Status\": \"Running\", \"HostKeyFingerprint\": \"SHA256:x\"", StringComparison.Ordinal));

            var listed = (await scratch.Manager.ListAsync()).ToDictionary(c => c.Id);
            Assert.Equal(ContainerStatus.Error, listed["0000aaa1"].Status);
            Assert.Equal(ContainerStatus.Error, listed["0000aaa2"].Status);
            Assert.Equal(ContainerStatus.Stopped, listed["0000aaa3"].Status); // its PID is not its hypervisor
            foreach (var id in listed.Keys) await scratch.Manager.StopAsync(id);

            Assert.False(unrelated.HasExited);
            Assert.Equal("keep me", await File.ReadAllTextAsync(victimFile));
        }
        finally
        {
            unrelated.Kill();
            File.Delete(victimFile);
        }
    }

    [Fact]
    public async Task Four_processes_starting_one_name_at_once_boot_one_vm_and_three_get_a_clear_error()
    {
        await using var scratch = new ScratchManager();
        var hosts = Enumerable.Range(0, 4).Select(_ => TestEnvironment.StartHost(scratch.State, "run", "--name", "db", TestEnvironment.Image("kernel"))).ToList();
        try
        {
            var outcomes = await Task.WhenAll(hosts.Select(async host =>
            {
                var line = await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3));
                return (Started: line is not null, Error: line is null ? await host.StandardError.ReadToEndAsync() : "");
            }));

            Assert.Single(outcomes, o => o.Started);
            Assert.All(outcomes.Where(o => !o.Started), o => Assert.Contains("A VM named 'db' is already running", o.Error, StringComparison.Ordinal));
            Assert.Single(TestEnvironment.QemuProcessesUnder(scratch.State));
        }
        finally
        {
            foreach (var host in hosts)
            {
                if (!host.HasExited) host.Kill();
                host.Dispose();
            }
        }
    }

    // The hypervisor's PID once QEMU has started and the manager waits for SSH.
    private static async Task<int> WaitForBootingVmAsync(LinuxKitManager manager)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(1))
        {
            if ((await manager.ListAsync()).FirstOrDefault(c => c.Pid > 0) is { } booting) return booting.Pid;
            await Task.Delay(50);
        }
        throw new TimeoutException("QEMU never started");
    }
}
