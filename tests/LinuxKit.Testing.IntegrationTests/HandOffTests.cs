using System.Text.RegularExpressions;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The `dotnet test` hand-off in test projects written the way a user writes one from the
/// README: the framework's own packages, the LinuxKit.Testing fixture and MSBuild packages, and
/// LinuxKitImage; no property the framework's template would not set. The samples cannot show
/// a missing hand-off condition: a property set in a sample by hand hides it.
/// </summary>
[Trait("Category", "Integration")]
public partial class HandOffTests(LocalPackageFeed feed) : IClassFixture<LocalPackageFeed>
{
    // As `dotnet new xunit3` (xunit.v3 4.x) makes it: an executable on Microsoft Testing
    // Platform, no Microsoft.NET.Test.Sdk, so IsTestProject is not set.
    private UserProject XunitV3OnTestingPlatform(string folder, string image) => new(folder)
    {
        GlobalJson = """{ "test": { "runner": "Microsoft.Testing.Platform" } }""",
        Project = $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <OutputType>Exe</OutputType>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <LinuxKitImage>{image}</LinuxKitImage>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="xunit.v3" Version="4.0.3" />
                <PackageReference Include="LinuxKit.Testing.Xunit.V3" Version="{feed.Version}" />
                <PackageReference Include="LinuxKit.Testing.MSBuild" Version="{feed.Version}" />
              </ItemGroup>
              <ItemGroup>
                <Using Include="Xunit" />
              </ItemGroup>
            </Project>
            """,
        Code = """
            using LinuxKit.Testing.Xunit;

            [assembly: AssemblyFixture(typeof(LinuxKitVm))]

            namespace UserTests;

            public class GuestTests(LinuxKitVm vm)
            {
                [Fact]
                public async Task Guest_runs_linux()
                {
                    vm.StreamConsoleToCurrentTest();
                    Assert.Equal("Linux\n", (await vm.ExecAsync(["uname", "-s"], TestContext.Current.CancellationToken)).Stdout);
                }

                [Fact]
                public async Task Arguments_arrive_unchanged() =>
                    Assert.Equal("a b\n", (await vm.ExecAsync(["echo", "a b"], TestContext.Current.CancellationToken)).Stdout);
            }
            """,
    };

    // As `dotnet new nunit` makes it: VSTest through Microsoft.NET.Test.Sdk and NUnit's adapter,
    // in the versions given (NUnit 4 and NUnit 5 with adapter 6).
    private UserProject NUnitOnVSTest(string folder, string image, string nunit, string adapter, string testSdk) => new(folder)
    {
        Project = $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
                <LinuxKitImage>{image}</LinuxKitImage>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Microsoft.NET.Test.Sdk" Version="{testSdk}" />
                <PackageReference Include="NUnit" Version="{nunit}" />
                <PackageReference Include="NUnit3TestAdapter" Version="{adapter}" />
                <PackageReference Include="LinuxKit.Testing.NUnit" Version="{feed.Version}" />
                <PackageReference Include="LinuxKit.Testing.MSBuild" Version="{feed.Version}" />
              </ItemGroup>
            </Project>
            """,
        Code = """
            using LinuxKit.Testing.NUnit;
            using NUnit.Framework;

            namespace UserTests;

            public class GuestTests : LinuxKitFixture
            {
                [Test]
                public async Task Guest_runs_linux() =>
                    Assert.That((await ExecAsync("uname", "-s")).Stdout, Is.EqualTo("Linux\n"));

                [Test]
                public async Task Arguments_arrive_unchanged() =>
                    Assert.That((await ExecAsync("echo", "a b")).Stdout, Is.EqualTo("a b\n"));

                [Test]
                public async Task Console_lines_written_during_a_failed_test_go_to_its_output()
                {
                    await ExecAsync("sh", "-c", "echo user: written to the console during this test > /dev/console");
                    Assert.That(Environment.GetEnvironmentVariable("USER_TESTS_FAIL"), Is.Null);
                }
            }
            """,
    };

    private Task<(int ExitCode, string Output)> DotnetAsync(UserProject project, string state, params string[] args) =>
        DotnetAsync(project, state, [], args);

    private async Task<(int ExitCode, string Output)> DotnetAsync(UserProject project, string state, Dictionary<string, string?> environment, params string[] args) =>
        await TestEnvironment.RunDotnetAsync(
            args.Append($"-p:RestoreAdditionalProjectSources={feed.Path}"),
            new Dictionary<string, string?>(environment) { ["LINUXKIT_TESTING_HOME"] = state, ["MSBUILDDISABLENODEREUSE"] = "1" },
            TimeSpan.FromMinutes(5),
            project.Folder);

    [Fact]
    public async Task An_xunit_v3_project_on_the_testing_platform_uses_the_vm_the_build_hands_off()
    {
        using var folder = new TempDirectory("lkt-user-");
        using var state = new TempDirectory("lkt-handoff-");
        var project = XunitV3OnTestingPlatform(folder.Path, TestEnvironment.Image("kernel")).Write();

        var (exitCode, output) = await DotnetAsync(project, state.Path, "test", "--output", "Detailed", "--no-progress");

        Assert.True(exitCode == 0, output);
        Assert.Contains("started by the build (linuxkit-testing.handoff.json)", output, StringComparison.Ordinal);
        Assert.Equal(0, ReadyLine().Count(output)); // the fixture booted nothing itself
        Assert.Matches(@"succeeded:\s+2\b", output);
        Assert.Empty(Directory.EnumerateFiles(folder.Path, "linuxkit-testing.handoff.json", SearchOption.AllDirectories));
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);

        // The same tests run by their executable, as an IDE or a script would: nothing hands a
        // VM off, and the fixture says that the build's image did not reach them and why.
        var executable = Directory.EnumerateFiles(folder.Path, "UserTests.dll", SearchOption.AllDirectories).Single(f => f.Contains("/bin/", StringComparison.Ordinal));
        var (direct, directOutput) = await TestEnvironment.RunDotnetAsync(
            ["exec", executable], new Dictionary<string, string?> { ["LINUXKIT_TESTING_HOME"] = state.Path }, TimeSpan.FromMinutes(2), folder.Path);
        Assert.NotEqual(0, direct);
        Assert.Contains($"The build was given LinuxKitImage '{TestEnvironment.Image("kernel")}', but no VM was handed off", directOutput, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("4.4.0", "5.2.0", "18.0.1")]
    [InlineData("5.0.0", "6.3.1", "18.12.0")]
    public async Task An_nunit_project_on_vstest_uses_the_vm_the_build_hands_off_and_shows_a_failed_tests_console(string nunit, string adapter, string testSdk)
    {
        using var folder = new TempDirectory("lkt-user-");
        using var state = new TempDirectory("lkt-handoff-");
        var project = NUnitOnVSTest(folder.Path, TestEnvironment.Image("kernel"), nunit, adapter, testSdk).Write();

        var (exitCode, output) = await DotnetAsync(project, state.Path, new Dictionary<string, string?> { ["USER_TESTS_FAIL"] = "1" }, "test", "--logger", "console;verbosity=normal");

        Assert.NotEqual(0, exitCode);
        Assert.Matches(@"Passed:\s+2\b", output);
        Assert.Matches(@"Failed:\s+1\b", output);
        Assert.Contains("started by the build (LINUXKIT_VM_ID)", output, StringComparison.Ordinal);
        Assert.Equal(0, ReadyLine().Count(output));
        var failed = Regex.Match(output, @"Failed \S*Console_lines_written_during_a");
        Assert.True(failed.Success, output);
        Assert.Contains("user: written to the console during this test", output[failed.Index..], StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task LinuxKitImage_in_a_project_that_is_not_a_test_project_is_a_warning_and_boots_nothing()
    {
        using var folder = new TempDirectory("lkt-user-");
        using var state = new TempDirectory("lkt-handoff-");
        var project = new UserProject(folder.Path)
        {
            Project = $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <TargetFramework>net10.0</TargetFramework>
                    <LinuxKitImage>{TestEnvironment.Image("kernel")}</LinuxKitImage>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="LinuxKit.Testing.MSBuild" Version="{feed.Version}" />
                  </ItemGroup>
                </Project>
                """,
            Code = "namespace UserLibrary; public static class Nothing { }",
        }.Write();

        var (exitCode, output) = await DotnetAsync(project, state.Path, "build");

        Assert.True(exitCode == 0, output);
        Assert.Contains("warning LKT012: LinuxKitImage is set in UserTests, which is not a test project", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(state.Path, "vms")) && Directory.EnumerateDirectories(Path.Combine(state.Path, "vms")).Any(), "a VM was started");
    }

    [GeneratedRegex(@"VM [0-9a-f]{8} is ready after")]
    private static partial Regex ReadyLine();

    /// <summary>A test project in a folder of its own, outside this repository's build settings.</summary>
    private sealed class UserProject(string folder)
    {
        public string Folder { get; } = folder;

        public required string Project { get; init; }

        public required string Code { get; init; }

        public string? GlobalJson { get; init; }

        public UserProject Write()
        {
            File.WriteAllText(Path.Combine(Folder, "UserTests.csproj"), Project);
            File.WriteAllText(Path.Combine(Folder, "Tests.cs"), Code);
            if (GlobalJson is not null) File.WriteAllText(Path.Combine(Folder, "global.json"), GlobalJson);
            return this;
        }
    }
}
