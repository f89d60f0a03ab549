using System.Diagnostics;
using System.Text.RegularExpressions;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>Runs samples/XunitSample with a real `dotnet test`, as a user would.</summary>
[Trait("Category", "Integration")]
public partial class XunitFixtureTests
{
    private static string Repo
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "LinuxKit.Testing.sln"))) return dir.FullName;
            throw new InvalidOperationException("The repository root (LinuxKit.Testing.sln) is not above " + AppContext.BaseDirectory);
        }
    }

    private static async Task<(int ExitCode, string Output, TimeSpan Took)> DotnetTestSampleAsync(string image, string state)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[]
                 {
                     "test", Path.Combine(Repo, "samples", "XunitSample"), "--logger", "console;verbosity=normal",
                     $"-p:LinuxKitTestImage={image}",
                 })
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["LINUXKIT_TESTING_HOME"] = state;
        info.Environment.Remove("LINUXKIT_VM_ID");
        var clock = Stopwatch.StartNew();
        using var dotnet = Process.Start(info)!;
        var stdout = dotnet.StandardOutput.ReadToEndAsync();
        var stderr = dotnet.StandardError.ReadToEndAsync();
        await dotnet.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        return (dotnet.ExitCode, await stdout + await stderr, clock.Elapsed);
    }

    [Fact]
    public async Task Each_class_fixture_boots_one_vm_for_all_its_tests_and_stops_it()
    {
        using var state = new TempDirectory("lkt-xunit-");
        var (exitCode, output, _) = await DotnetTestSampleAsync(TestEnvironment.Image("kernel"), state.Path);
        Assert.True(exitCode == 0, output);
        // Two fixtures (3 tests and 1 test): two boots, not four.
        Assert.Equal(2, ReadyLine().Count(output));
        Assert.Matches(@"Passed:\s+4", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Broken_image_fails_the_tests_quickly_with_the_reason()
    {
        using var state = new TempDirectory("lkt-xunit-");
        var broken = Path.Combine(state.Path, "broken.qcow2");
        await File.WriteAllTextAsync(broken, "not an image");
        var (exitCode, output, took) = await DotnetTestSampleAsync(broken, state.Path);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("is not a bootable LinuxKit image", output, StringComparison.Ordinal);
        Assert.Matches(@"Failed:\s+4", output);
        Assert.True(took < TimeSpan.FromMinutes(2), $"took {took}");
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [GeneratedRegex(@"VM [0-9a-f]{8} is ready after")]
    private static partial Regex ReadyLine();
}
