using LinuxKit.Testing.Xunit;
using Xunit;

// One VM for every test in the assembly.
[assembly: AssemblyFixture(typeof(LinuxKitVm))]

namespace XunitV3MtpSample;

public class GuestTests
{
    private readonly LinuxKitVm vm;

    public GuestTests(LinuxKitVm vm)
    {
        this.vm = vm;
        // The console lines the VM writes during a test go to that test's output, and the first
        // test's output also says how the VM was started: under Microsoft Testing Platform,
        // `dotnet test` shows test output (failed tests always, passed ones with --output
        // Detailed) but no diagnostic messages.
        vm.StreamConsoleToCurrentTest();
    }

    [Fact]
    public async Task Guest_runs_linux()
    {
        var result = await vm.ExecAsync(["uname", "-s"], TestContext.Current.CancellationToken);
        Assert.Equal("Linux\n", result.Stdout);
    }

    [Fact]
    public async Task Serial_console_shows_the_boot() =>
        Assert.Contains("Welcome to LinuxKit", await vm.ReadConsoleAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);

    [Fact]
    public async Task Console_lines_written_during_a_test_go_to_its_output()
    {
        await vm.ExecAsync(["sh", "-c", "echo sample: written to the console during this test > /dev/console"], TestContext.Current.CancellationToken);
        await Task.Delay(500, TestContext.Current.CancellationToken); // the console is followed every 0.1 s
        // LINUXKIT_SAMPLE_FAIL=1 fails this test, to see the console line beside the failure.
        Assert.Null(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"));
    }
}
