using LinuxKit.Testing.Xunit;
using Xunit;

// One VM for every test in the assembly.
[assembly: AssemblyFixture(typeof(LinuxKitVm))]

namespace XunitV3Sample;

public class GuestTests(LinuxKitVm vm)
{
    [Fact]
    public async Task Guest_runs_linux()
    {
        var result = await vm.ExecAsync(["uname", "-s"], TestContext.Current.CancellationToken);
        Assert.Equal("Linux\n", result.Stdout);
    }

    [Fact]
    public async Task Arguments_arrive_unchanged()
    {
        var result = await vm.ExecAsync(["echo", "a b; rm -rf /"], TestContext.Current.CancellationToken);
        Assert.Equal("a b; rm -rf /\n", result.Stdout);
    }
}

public class ConsoleTests
{
    private readonly LinuxKitVm vm;

    public ConsoleTests(LinuxKitVm vm)
    {
        this.vm = vm;
        vm.StreamConsoleToCurrentTest(); // what the VM's console says during a test is in that test's output
    }

    [Fact]
    public async Task Console_lines_written_during_a_test_go_to_its_output()
    {
        await vm.ExecAsync(["sh", "-c", "echo sample: written to the console during this test > /dev/console"], TestContext.Current.CancellationToken);
        await Task.Delay(500, TestContext.Current.CancellationToken); // the console is followed every 0.1 s
        // LINUXKIT_SAMPLE_FAIL=1 fails this test, to see the console line beside the failure.
        Assert.Null(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"));
    }

    [Fact]
    public async Task Serial_console_shows_the_boot() =>
        Assert.Contains("Welcome to LinuxKit", await vm.ReadConsoleAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
}
