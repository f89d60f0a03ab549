using System.Diagnostics;
using System.Text.RegularExpressions;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// Runs the fixture samples (xUnit v2, xUnit v3, NUnit) with a real `dotnet test`, as a user
/// would, against the packages packed from this tree into a local feed.
/// </summary>
[Trait("Category", "Integration")]
public partial class FixtureSampleTests(LocalPackageFeed feed) : IClassFixture<LocalPackageFeed>
{
    internal static string Repo
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "LinuxKit.Testing.sln"))) return dir.FullName;
            throw new InvalidOperationException("The repository root (LinuxKit.Testing.sln) is not above " + AppContext.BaseDirectory);
        }
    }

    private async Task<(int ExitCode, string Output, TimeSpan Took)> DotnetTestSampleAsync(string sample, string image, string state, string? handedOffVm = null, params string[] properties) =>
        await DotnetTestSampleAsync(sample, image, state, new Dictionary<string, string?> { ["LINUXKIT_VM_ID"] = handedOffVm }, properties);

    private async Task<(int ExitCode, string Output, TimeSpan Took)> DotnetTestSampleAsync(string sample, string image, string state, Dictionary<string, string?> environment, params string[] properties)
    {
        environment["LINUXKIT_TESTING_HOME"] = state;
        var clock = Stopwatch.StartNew();
        var (exitCode, output) = await RepoBuilds.RunAsync(
            sample,
            new[]
            {
                "test", Path.Combine(Repo, "samples", sample), "--logger", "console;verbosity=normal",
                $"-p:LinuxKitTestImage={image}",
                $"-p:LinuxKitPackageVersion={feed.Version}",
                $"-p:RestoreAdditionalProjectSources={feed.Path}",
            }.Concat(properties),
            environment,
            TimeSpan.FromMinutes(5));
        return (exitCode, output, clock.Elapsed);
    }

    // The Microsoft Testing Platform sample runs from its own folder, whose global.json selects
    // that runner; `--output Detailed` shows passed tests' output, where the fixture writes how
    // the VM was started.
    private Task<(int ExitCode, string Output)> DotnetTestOnTestingPlatformAsync(string image, string state, Dictionary<string, string?> environment, params string[] properties) =>
        DotnetTestOnTestingPlatformAsync("XunitV3MtpSample", image, state, environment, properties);

    private async Task<(int ExitCode, string Output)> DotnetTestOnTestingPlatformAsync(string sample, string image, string state, Dictionary<string, string?> environment, params string[] properties)
    {
        environment["LINUXKIT_TESTING_HOME"] = state;
        return await RepoBuilds.RunAsync(
            sample,
            new[]
            {
                "test", "--output", "Detailed", "--no-progress",
                $"-p:LinuxKitTestImage={image}",
                $"-p:LinuxKitPackageVersion={feed.Version}",
                $"-p:RestoreAdditionalProjectSources={feed.Path}",
            }.Concat(properties),
            environment,
            TimeSpan.FromMinutes(5),
            workingDirectory: Path.Combine(Repo, "samples", sample));
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task The_xunit_v3_sample_on_the_testing_platform_boots_one_vm_shows_how_and_stops_it(string guest)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(TestEnvironment.GuestImage(guest), state.Path, []);
        Assert.True(exitCode == 0, output);
        Assert.Matches(@"succeeded:\s+3\b", output);
        Assert.Single(ReadyLine().Matches(output).Select(m => m.Value).Distinct());
        Assert.Contains("--- LinuxKit.Testing: how the VM was started ---", output, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task The_hand_off_works_on_the_testing_platform_too_and_the_vm_ends_with_dotnet_test()
    {
        using var state = new TempDirectory("lkt-fixture-");
        var image = TestEnvironment.Image("kernel");
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(image, state.Path, [], $"-p:LinuxKitImage={image}");
        Assert.True(exitCode == 0, output);
        // MSBuild puts its environment back when the build ends, before these tests run: the
        // VM is named by a file beside the test assembly, removed with the VM.
        Assert.Contains("started by the build (linuxkit-testing.handoff.json)", output, StringComparison.Ordinal);
        Assert.Equal(0, ReadyLine().Count(output)); // the fixture booted nothing itself
        Assert.Matches(@"succeeded:\s+3\b", output);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Repo, "samples", "XunitV3MtpSample", "bin"), "linuxkit-testing.handoff.json", SearchOption.AllDirectories));
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task A_failed_test_on_the_testing_platform_shows_the_console_lines_the_vm_wrote_while_it_ran()
    {
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(TestEnvironment.Image("kernel"), state.Path, new() { ["LINUXKIT_SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, exitCode);
        Assert.Matches(@"failed:\s+1\b", output);
        var failure = output[output.IndexOf("failed XunitV3MtpSample", StringComparison.Ordinal)..];
        Assert.Contains("sample: written to the console during this test", failure, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("XunitSample", 2, 5, "dropbear")]   // two class fixtures (4 tests and 1 test)
    [InlineData("XunitSample", 2, 5, "openssh")]
    [InlineData("XunitV3Sample", 1, 4, "dropbear")] // one assembly fixture for two classes
    [InlineData("XunitV3Sample", 1, 4, "openssh")]
    [InlineData("NUnitSample", 3, 6, "dropbear")]   // two parallel fixtures and one namespace SetUpFixture
    [InlineData("NUnitSample", 3, 6, "openssh")]
    [InlineData("XunitSample", 2, 5, "arm64")]      // LinuxKit's other outputs, nothing in the sample names firmware or architecture
    [InlineData("NUnitSample", 3, 6, "qcow2-efi")]
    public async Task Each_fixture_boots_one_vm_for_all_its_tests_and_stops_it(string sample, int boots, int tests, string guest)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output, _) = await DotnetTestSampleAsync(sample, TestEnvironment.GuestImage(guest), state.Path);
        Assert.True(exitCode == 0, output);
        // A VM's ready line shows in the diagnostics, and again in the first test's output.
        Assert.Equal(boots, ReadyLine().Matches(output).Select(m => m.Value).Distinct().Count());
        Assert.Matches($@"Passed:\s+{tests}\b", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("XunitSample")]
    [InlineData("XunitV3Sample")]
    [InlineData("NUnitSample")]
    public async Task Broken_image_fails_the_tests_quickly_with_the_reason(string sample)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var broken = Path.Combine(state.Path, "broken.qcow2");
        await File.WriteAllTextAsync(broken, "not an image");
        var (exitCode, output, took) = await DotnetTestSampleAsync(sample, broken, state.Path);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("is not a bootable LinuxKit image", output, StringComparison.Ordinal);
        Assert.Matches(@"Failed:\s+[1-9]", output);
        Assert.True(took < TimeSpan.FromMinutes(2), $"took {took}");
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Fixture_uses_a_vm_handed_off_by_the_build_and_leaves_it_running()
    {
        await using var scratch = new ScratchManager();
        var vm = await scratch.Manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { Detach = true });

        var (exitCode, output, _) = await DotnetTestSampleAsync("XunitV3Sample", TestEnvironment.Image("kernel"), scratch.State, handedOffVm: vm.Id);
        Assert.True(exitCode == 0, output);
        Assert.Equal(0, ReadyLine().Count(output));
        Assert.Contains($"Using VM {vm.Id}", output, StringComparison.Ordinal);
        Assert.Matches(@"Passed:\s+4\b", output);

        Assert.True(TestEnvironment.IsRunning(vm.Pid));
        await scratch.Manager.StopAsync(vm.Id);
    }

    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task Dotnet_test_with_LinuxKitImage_boots_one_vm_for_the_run_and_stops_it(string guest)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var image = TestEnvironment.GuestImage(guest);
        var (exitCode, output, _) = await DotnetTestSampleAsync("XunitV3Sample", image, state.Path, properties: $"-p:LinuxKitImage={image}");
        Assert.True(exitCode == 0, output);
        Assert.Contains("started by the build (LINUXKIT_VM_ID)", output, StringComparison.Ordinal);
        Assert.Equal(0, ReadyLine().Count(output)); // the fixture booted nothing itself
        Assert.Matches(@"Passed:\s+4\b", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("XunitSample")]
    [InlineData("XunitV3Sample")]
    [InlineData("NUnitSample")]
    public async Task A_failed_test_shows_the_console_lines_the_vm_wrote_while_it_ran(string sample)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output, _) = await DotnetTestSampleAsync(
            sample, TestEnvironment.Image("kernel"), state.Path, new Dictionary<string, string?> { ["LINUXKIT_SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, exitCode);
        Assert.Matches(@"Failed:\s+1\b", output);
        // The logger names a failed xUnit test with its class, an NUnit one without.
        var failed = Regex.Match(output, @"Failed \S*Console_lines_written_during_a");
        Assert.True(failed.Success, output);
        var failure = output[failed.Index..];
        Assert.Contains("sample: written to the console during this test", failure, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Dotnet_test_hand_off_stops_the_vm_also_when_tests_fail()
    {
        // XunitSample's configured fixture expects 256 MB and a forwarded port 22, which the
        // handed-off VM does not have: one test fails.
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output, _) = await DotnetTestSampleAsync(
            "XunitSample", TestEnvironment.Image("kernel"), state.Path, properties: $"-p:LinuxKitImage={TestEnvironment.Image("kernel")}");
        Assert.NotEqual(0, exitCode);
        Assert.Matches(@"Failed:\s+1\b", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Testcontainers_sample_reaches_the_guest_web_server_and_asks_docker_for_nothing()
    {
        using var state = new TempDirectory("lkt-fixture-");
        // A Docker endpoint that writes down what each caller asks, then hangs up: no engine.
        using var docker = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        docker.Start();
        var requests = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var recording = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    using var caller = await docker.AcceptTcpClientAsync();
                    using var reader = new StreamReader(caller.GetStream());
                    using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    try { requests.Enqueue(await reader.ReadLineAsync(patience.Token) ?? "(nothing)"); }
                    catch (OperationCanceledException) { requests.Enqueue("(nothing)"); }
                }
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or ObjectDisposedException)
            {
            }
        });
        var environment = new Dictionary<string, string?>
        {
            ["DOCKER_HOST"] = $"tcp://127.0.0.1:{((System.Net.IPEndPoint)docker.LocalEndpoint).Port}",
            ["TESTCONTAINERS_RYUK_DISABLED"] = null,
        };

        var (exitCode, output, _) = await DotnetTestSampleAsync("TestcontainersSample", TestEnvironment.Image("kernel"), state.Path, environment);
        docker.Stop();
        await recording;

        Assert.True(exitCode == 0, output);
        Assert.Matches(@"Passed:\s+3\b", output);
        // Testcontainers' settings class, which its WaitStrategy type loads on first use, probes
        // the endpoint once per process; nothing is ever created, started or removed there.
        Assert.All(requests, r => Assert.Matches(@"^(\(nothing\)|(GET|HEAD) /(v[0-9.]+/)?(_ping|version|info)\b)", r));
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [GeneratedRegex(@"VM [0-9a-f]{8} is ready after")]
    private static partial Regex ReadyLine();
}

/// <summary>
/// The LinuxKit.Testing packages and the tool, packed once per test run from this tree with a
/// version of their own, for every class that uses them (through <see cref="RepoBuilds"/>, so
/// no other build of src/ runs meanwhile).
/// </summary>
public sealed class LocalPackageFeed : IAsyncLifetime
{
    private static readonly TempDirectory Feed = CreateFeed();
    private static readonly Lazy<Task> Packed = new(PackAsync);

    // Unique per run, so NuGet's global package cache never serves an older build.
    private static readonly string SharedVersion = $"0.1.0-local.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";

    /// <summary>Every package project under src/, the tool included.</summary>
    public static IReadOnlyList<string> Projects { get; } =
    [
        "LinuxKit.Testing", "LinuxKit.Testing.Xunit", "LinuxKit.Testing.Xunit.V3", "LinuxKit.Testing.NUnit", "LinuxKit.Testing.MSTest", "LinuxKit.Testing.TUnit",
        "LinuxKit.Testing.MSBuild", "LinuxKit.Testing.Testcontainers", "LinuxKit.Testing.KubeVirt", "LinuxKit.Testing.Tool",
    ];

    public string Path { get; } = Feed.Path;

    public string Version { get; } = SharedVersion;

    public Task InitializeAsync() => Packed.Value;

    public Task DisposeAsync() => Task.CompletedTask;

    private static TempDirectory CreateFeed()
    {
        var feed = new TempDirectory("lkt-feed-");
        AppDomain.CurrentDomain.ProcessExit += (_, _) => feed.Dispose();
        return feed;
    }

    private static async Task PackAsync()
    {
        foreach (var project in Projects)
        {
            var (exitCode, output) = await RepoBuilds.RunAsync(
                RepoBuilds.Sources,
                ["pack", System.IO.Path.Combine(FixtureSampleTests.Repo, "src", project), "-c", "Release", "-o", Feed.Path, $"-p:Version={SharedVersion}"],
                new Dictionary<string, string?>(),
                TimeSpan.FromMinutes(3));
            if (exitCode != 0) throw new InvalidOperationException($"dotnet pack {project} failed: {output}");
        }
    }
}
