using System.Text.RegularExpressions;

namespace LinuxKit.Testing.IntegrationTests;

// MSTest 4, TUnit and NUnit 5 as their users run them today: under Microsoft Testing Platform
// (each sample's folder selects it). NUnit 5 under VSTest: HandOffTests.
public partial class FixtureSampleTests
{
    [Theory]
    [InlineData("MSTestSample", 3, 5)] // two classes with a VM each, one class on the assembly's VM
    [InlineData("TUnitSample", 2, 4)]  // a per-class and a per-assembly data source
    [InlineData("NUnit5Sample", 2, 3)] // two parallel fixtures, on the NUnit runner
    public async Task On_the_testing_platform_each_fixture_boots_one_vm_a_failed_test_shows_its_console_and_nothing_is_left(string sample, int boots, int tests)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(sample, TestEnvironment.Image("kernel"), state.Path, new() { ["LINUXKIT_SAMPLE_FAIL"] = "1" });
        Assert.NotEqual(0, exitCode);
        Assert.Matches(@"failed:\s+1\b", output);
        Assert.Matches($@"succeeded:\s+{tests - 1}\b", output);
        Assert.Equal(boots, ReadyLine().Matches(output).Select(m => m.Value).Distinct().Count());
        var failed = Regex.Match(output, @"failed \S*Console_lines_written_during_a");
        Assert.True(failed.Success, output);
        Assert.Contains("sample: written to the console during this test", output[failed.Index..], StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("MSTestSample", 5)]
    [InlineData("TUnitSample", 4)]
    [InlineData("NUnit5Sample", 3)]
    public async Task On_the_testing_platform_the_fixtures_use_the_vm_the_build_handed_off(string sample, int tests)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var image = TestEnvironment.Image("kernel");
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(sample, image, state.Path, [], $"-p:LinuxKitImage={image}");
        Assert.True(exitCode == 0, output);
        Assert.Contains("started by the build (linuxkit-testing.handoff.json)", output, StringComparison.Ordinal);
        Assert.Equal(0, ReadyLine().Count(output)); // no fixture booted a VM of its own
        Assert.Matches($@"succeeded:\s+{tests}\b", output);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Theory]
    [InlineData("MSTestSample")]
    [InlineData("TUnitSample")]
    public async Task On_the_testing_platform_a_broken_image_fails_the_tests_quickly_with_the_reason(string sample)
    {
        using var state = new TempDirectory("lkt-fixture-");
        var broken = Path.Combine(state.Path, "broken.qcow2");
        await File.WriteAllTextAsync(broken, "not an image");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exitCode, output) = await DotnetTestOnTestingPlatformAsync(sample, broken, state.Path, []);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("is not a bootable LinuxKit image", output, StringComparison.Ordinal);
        Assert.Matches(@"failed:\s+[1-9]", output);
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"took {clock.Elapsed}");
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }
}
