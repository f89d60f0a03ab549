using LinuxKit.Testing.MSBuild;
using LinuxKit.Testing.TestSupport;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>Builds samples/MSBuildSample with a real `dotnet build` against the packed LinuxKit.Testing.MSBuild.</summary>
[Trait("Category", "Integration")]
public class MSBuildTasksTests(LocalPackageFeed feed, KubeVirt.KubeVirtClusterFixture cluster) : IClassFixture<LocalPackageFeed>, IClassFixture<KubeVirt.KubeVirtClusterFixture>
{
    private Task<(int ExitCode, string Output)> BuildSampleAsync(string state, params string[] properties) =>
        BuildSampleOnAsync(TestEnvironment.GuestImage("dropbear"), state, properties);

    private Task<(int ExitCode, string Output)> BuildSampleOnAsync(string image, string state, params string[] properties) =>
        RepoBuilds.RunAsync(
            "MSBuildSample",
            new[]
            {
                "build", Path.Combine(FixtureSampleTests.Repo, "samples", "MSBuildSample"), "-nodeReuse:false",
                $"-p:LinuxKitPackageVersion={feed.Version}", $"-p:RestoreAdditionalProjectSources={feed.Path}",
                $"-p:VmImage={image}",
            }.Concat(properties),
            new Dictionary<string, string?> { ["LINUXKIT_TESTING_HOME"] = state },
            TimeSpan.FromMinutes(5));

    [Theory]
    [InlineData("dropbear")]
    [InlineData("openssh")]
    [InlineData("iso-efi")] // LinuxKit's other outputs, nothing in the project naming firmware or architecture
    [InlineData("arm64")]
    public async Task Build_starts_a_vm_runs_a_command_in_it_and_stops_it(string guest)
    {
        using var state = new TempDirectory("lkt-msbuild-");
        // As CI builds often are: on a host whose KVM does not run guests (this one), falling
        // back to TCG is a message, not a warning that fails the build.
        var (exitCode, output) = await BuildSampleOnAsync(TestEnvironment.GuestImage(guest), state.Path, "-warnaserror");
        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("LKT010", output, StringComparison.Ordinal);
        // An arm64 guest on this x86_64 host needs no probe: only TCG can run it.
        if (guest != "arm64") Assert.True(File.Exists(Path.Combine(state.Path, "host", "accelerator.json")), "the accelerator found is not kept for later processes");
        Assert.Matches(@"VM [0-9a-f]{8} runs Linux; forwarded \d+ to 22", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
        Assert.Contains("\"ExitCode\": 137", StoppedRecord(state.Path), StringComparison.Ordinal); // stopped at once
    }

    [Fact]
    public async Task The_build_runs_its_vm_on_kubevirt_when_the_environment_says_so()
    {
        using var state = new TempDirectory("lkt-msbuild-");
        var (exitCode, output) = await RepoBuilds.RunAsync(
            "MSBuildSample",
            [
                "build", Path.Combine(FixtureSampleTests.Repo, "samples", "MSBuildSample"), "-nodeReuse:false",
                $"-p:LinuxKitPackageVersion={feed.Version}", $"-p:RestoreAdditionalProjectSources={feed.Path}",
                $"-p:VmImage={KubeVirt.KubeVirtClusterFixture.ContainerDisk("dropbear")}",
            ],
            new Dictionary<string, string?>
            {
                ["LINUXKIT_TESTING_HOME"] = state.Path,
                ["LINUXKIT_TESTING_HYPERVISOR"] = "kubevirt",
                ["LINUXKIT_TESTING_KUBECONFIG"] = cluster.Kubeconfig,
            },
            TimeSpan.FromMinutes(5));

        Assert.True(exitCode == 0, output);
        Assert.Matches(@"VM [0-9a-f]{8} runs Linux; forwarded \d+ to 22", output);
        Assert.Contains("\"Hypervisor\": \"KubeVirt\"", StoppedRecord(state.Path), StringComparison.Ordinal);
        Assert.Empty(await cluster.VmisAsync()); // StopLinuxKit deleted the VMI
    }

    [Fact]
    public async Task StopLinuxKit_with_Graceful_powers_the_guest_off()
    {
        using var state = new TempDirectory("lkt-msbuild-");
        var (exitCode, output) = await BuildSampleAsync(state.Path, "-p:GracefulStop=true");
        Assert.True(exitCode == 0, output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
        Assert.Contains("\"ExitCode\": 0", StoppedRecord(state.Path), StringComparison.Ordinal); // the dropbear guest powered off
    }

    // The record the detached VM leaves behind, stopped.
    private static string StoppedRecord(string state)
    {
        var record = File.ReadAllText(Assert.Single(Directory.GetFiles(Path.Combine(state, "vms"), "vm.json", SearchOption.AllDirectories)));
        Assert.Contains("\"Status\": \"Stopped\"", record, StringComparison.Ordinal);
        return record;
    }

    [Fact]
    public async Task Failing_step_fails_the_build_and_the_cleanup_target_still_stops_the_vm()
    {
        using var state = new TempDirectory("lkt-msbuild-");
        var (exitCode, output) = await BuildSampleAsync(state.Path, "-p:ExtraCommand=ls /nonexistent");
        Assert.NotEqual(0, exitCode);
        Assert.Contains("error LKT003: 'ls /nonexistent' exited with code 1", output, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
        var records = Directory.GetFiles(Path.Combine(state.Path, "vms"), "vm.json", SearchOption.AllDirectories);
        Assert.Single(records); // the VM outlives its task (detached), so its record stays, stopped
        Assert.Contains("\"Status\": \"Stopped\"", File.ReadAllText(records[0]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_vm_tied_to_the_build_is_stopped_when_the_build_ends_though_the_node_lives_on()
    {
        using var state = new TempDirectory("lkt-msbuild-");
        var engine = new RecordingBuildEngine();
        var start = new StartLinuxKit { BuildEngine = engine, StateDirectory = state.Path, Image = TestEnvironment.GuestImage("dropbear"), Memory = 256, StopWhenBuildEnds = true };
        Assert.True(await Task.Run(start.Execute), string.Join('\n', engine.Errors.Select(e => e.Message)));
        await using var observer = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = state.Path });
        Assert.Equal(ContainerStatus.Running, observer.Inspect(start.Id!).Status);

        engine.EndBuild(); // this test process, like a reused MSBuild node, goes on

        Assert.Empty(await observer.ListAsync()); // stopped, and its folder removed like any owned VM's
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Cancelling_start_like_ctrl_c_stops_the_booting_vm()
    {
        using var state = new TempDirectory("lkt-msbuild-");
        var engine = new RecordingBuildEngine();
        var start = new StartLinuxKit { BuildEngine = engine, StateDirectory = state.Path, Image = TestEnvironment.Image("kernel"), Memory = 256 };
        var running = Task.Run(start.Execute);
        // Cancelled while it boots: once its hypervisor runs (its pid file is written).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!Directory.EnumerateFiles(state.Path, "hypervisor.pid", SearchOption.AllDirectories).Any())
        {
            Assert.True(DateTime.UtcNow < deadline && !running.IsCompleted, "the VM's hypervisor did not start within 30 s");
            await Task.Delay(50);
        }
        start.Cancel();
        Assert.False(await running.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains(engine.Errors, e => e.Code == "LKT005");
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }
}
