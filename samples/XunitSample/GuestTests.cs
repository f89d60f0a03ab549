using LinuxKit.Testing.Xunit;
using Xunit;
using Xunit.Abstractions;

namespace XunitSample;

// One VM for all the tests in this class: booted before the first, stopped after the last.
public class GuestTests : IClassFixture<LinuxKitVm>
{
    private readonly LinuxKitVm vm;

    public GuestTests(LinuxKitVm vm, ITestOutputHelper output)
    {
        this.vm = vm;
        vm.StreamConsoleTo(output); // what the VM's console says during a test is in that test's output
    }

    [Fact]
    public async Task Console_lines_written_during_a_test_go_to_its_output()
    {
        await vm.ExecAsync("sh", "-c", "echo sample: written to the console during this test > /dev/console");
        await Task.Delay(500); // the console is followed every 0.1 s
        // LINUXKIT_SAMPLE_FAIL=1 fails this test, to see the console line beside the failure.
        Assert.Null(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"));
    }

    [Fact]
    public async Task Guest_runs_linux()
    {
        var result = await vm.ExecAsync("uname", "-s");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("Linux\n", result.Stdout);
    }

    [Fact]
    public async Task Arguments_arrive_unchanged()
    {
        var result = await vm.ExecAsync("echo", "a b; rm -rf /");
        Assert.Equal("a b; rm -rf /\n", result.Stdout);
    }

    [Fact]
    public async Task Serial_console_shows_the_boot()
    {
        Assert.Contains("Welcome to LinuxKit", await vm.ReadConsoleAsync(), StringComparison.Ordinal);
        Assert.True(vm.SshPort > 0);
    }
}
