using System.Diagnostics;
using System.Globalization;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The process that boots VMs killed outright while a boot is under way, as `dotnet test
/// --blame-hang`, a CI runner's timeout or `kill -9 -- -PGID` do: every hypervisor it started
/// (a warm-start template, a cold boot, a detached VM not yet running) is stopped by its watchdog
/// within seconds, nothing is left Starting, and the next VM of that image boots.
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "FaultInjection")]
public class OwnerKilledTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);

    private static async Task KillAsync(Process host, bool wholeGroup)
    {
        // setsid made the host the leader of its own group: "-PID" is that group.
        var target = (wholeGroup ? "-" : "") + host.Id.ToString(CultureInfo.InvariantCulture);
        using (var kill = Process.Start("kill", ["-KILL", "--", target])) await kill.WaitForExitAsync();
        await host.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} did not happen within {Patience.TotalSeconds:0} s");
            await Task.Delay(50);
        }
    }

    private static List<int> TemplateBoots(string state) =>
        TestEnvironment.QemuProcessesUnder(state).Where(pid => File.ReadAllText($"/proc/{pid}/cmdline").Contains("linuxkit-tpl-", StringComparison.Ordinal)).ToList();

    private static IEnumerable<string> StagingFolders(string state) =>
        Directory.Exists(Path.Combine(state, "templates"))
            ? Directory.EnumerateDirectories(Path.Combine(state, "templates"), "*.partial-*")
            : [];

    private static async Task AssertNothingLeftAndTheNextVmBootsAsync(ScratchManager scratch, string image)
    {
        await TestEnvironment.AssertNoQemuLeftAsync(scratch.State);
        // The watchdog removes a template's staging folder once its QEMU has gone.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (StagingFolders(scratch.State).Any() && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Empty(StagingFolders(scratch.State));
        Assert.All(await scratch.Manager.ListAsync(), vm => Assert.NotEqual(ContainerStatus.Starting, vm.Status));
        var next = await scratch.Manager.RunAsync(image, ScratchManager.Small);
        Assert.Equal("Linux\n", (await scratch.Manager.ExecAsync(next.Id, ["uname", "-s"])).Stdout);
        await scratch.Manager.StopAsync(next.Id);
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.GuestsEitherWay), MemberType = typeof(TestEnvironment))]
    public async Task An_owner_killed_while_its_warm_start_template_boots_leaves_no_template_qemu_or_staging_folder(string guest, bool wholeGroup)
    {
        await using var scratch = new ScratchManager();
        var image = TestEnvironment.GuestImage(guest);
        using var host = TestEnvironment.StartHost(scratch.State, ownProcessGroup: true, "run", image);
        await WaitUntilAsync(() => TemplateBoots(scratch.State).Count > 0, "a template boot");

        await KillAsync(host, wholeGroup);

        await AssertNothingLeftAndTheNextVmBootsAsync(scratch, image);
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task An_owner_killed_with_its_process_group_while_its_clone_is_restored_leaves_nothing_running(string guest)
    {
        await using var scratch = new ScratchManager();
        var image = TestEnvironment.GuestImage(guest);
        // The template exists, so the host's VM is a clone: QEMU started with -incoming, its
        // state loaded, then readiness and the clone's renewal.
        var maker = await scratch.Manager.RunAsync(image, ScratchManager.Small);
        await scratch.Manager.StopAsync(maker.Id);
        using var host = TestEnvironment.StartHost(scratch.State, ownProcessGroup: true, "run", image);
        await WaitUntilAsync(
            () => TestEnvironment.QemuProcessesUnder(scratch.State).Any(pid => File.ReadAllText($"/proc/{pid}/cmdline").Contains("-incoming", StringComparison.Ordinal)),
            "a clone's restore");

        await KillAsync(host, wholeGroup: true);

        await AssertNothingLeftAndTheNextVmBootsAsync(scratch, image);
        Assert.Single(await scratch.Manager.ListTemplatesAsync()); // the template stays usable
    }

    [Fact]
    public async Task An_owner_killed_with_its_process_group_while_a_vm_boots_cold_leaves_nothing_running()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(
            scratch.State, ownProcessGroup: true, new Dictionary<string, string> { ["LINUXKIT_TESTING_WARM_START"] = "0" }, "run", TestEnvironment.Image("kernel"));
        await WaitUntilAsync(() => TestEnvironment.QemuProcessesUnder(scratch.State).Count > 0, "a cold boot");

        await KillAsync(host, wholeGroup: true);

        await AssertNothingLeftAndTheNextVmBootsAsync(scratch, TestEnvironment.Image("kernel"));
    }

    [Fact]
    public async Task An_owner_killed_with_its_process_group_after_its_vm_runs_takes_the_vm_with_it()
    {
        await using var scratch = new ScratchManager();
        using var host = TestEnvironment.StartHost(scratch.State, ownProcessGroup: true, "run", TestEnvironment.Image("kernel"));
        var (_, pid) = await TestEnvironment.ReadStartedVmAsync(host);
        Assert.True(TestEnvironment.IsRunning(pid));

        await KillAsync(host, wholeGroup: true);

        await AssertNothingLeftAndTheNextVmBootsAsync(scratch, TestEnvironment.Image("kernel"));
    }

    [Fact]
    public async Task A_detached_vm_whose_owner_dies_while_it_boots_is_stopped_but_one_that_runs_outlives_its_owner()
    {
        await using var scratch = new ScratchManager();
        using (var booting = TestEnvironment.StartHost(
                   scratch.State, ownProcessGroup: true, new Dictionary<string, string> { ["LINUXKIT_TESTING_WARM_START"] = "0" }, "run", "--detach", TestEnvironment.Image("kernel")))
        {
            await WaitUntilAsync(() => TestEnvironment.QemuProcessesUnder(scratch.State).Count > 0, "a detached boot");
            await KillAsync(booting, wholeGroup: true);
        }
        await AssertNothingLeftAndTheNextVmBootsAsync(scratch, TestEnvironment.Image("kernel"));

        using var host = TestEnvironment.StartHost(scratch.State, ownProcessGroup: true, "run", "--detach", TestEnvironment.Image("kernel"));
        var (id, pid) = await TestEnvironment.ReadStartedVmAsync(host);
        await host.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        // Its boot's watchdog was released when it ran: once that watchdog has gone, it did so
        // without acting (one that acts stops the VM before it exits).
        await TestEnvironment.AssertNoneLeftAsync("watchdogs", () => TestEnvironment.ProcessesWhose(c => c.Contains("linuxkit-testing-watchdog", StringComparison.Ordinal) && c.Contains(id, StringComparison.Ordinal)), Patience);
        Assert.True(TestEnvironment.IsRunning(pid), "the detached VM died with the process that booted it");
        await scratch.Manager.StopAsync(id);
    }
}
