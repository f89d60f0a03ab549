using LinuxKit.Testing.MSTest;

namespace MSTestSample;

// One VM for this class's tests, booted in its ClassInitialize, stopped in its ClassCleanup.
[TestClass]
public class GuestTests : LinuxKitTest
{
    [TestMethod]
    public async Task Guest_runs_linux()
    {
        var result = await Vm.ExecAsync(["uname", "-s"], TestContext.CancellationToken);
        Assert.AreEqual("Linux\n", result.Stdout);
    }

    [TestMethod]
    public async Task Serial_console_shows_the_boot() =>
        Assert.Contains("Welcome to LinuxKit", await Vm.ReadConsoleAsync(TestContext.CancellationToken));

    [TestMethod]
    public async Task Console_lines_written_during_a_test_go_to_its_output()
    {
        await Vm.ExecAsync(["sh", "-c", "echo sample: written to the console during this test > /dev/console"], TestContext.CancellationToken);
        await Task.Delay(500, TestContext.CancellationToken); // the console is followed every 0.1 s
        // LINUXKIT_SAMPLE_FAIL=1 fails this test, to see the console line beside the failure.
        Assert.IsNull(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"));
    }
}

// Another class, another VM of its own.
[TestClass]
public class SecondClassTests : LinuxKitTest
{
    [TestMethod]
    public async Task Each_class_has_its_own_vm()
    {
        var result = await Vm.ExecAsync(["cat", "/proc/sys/kernel/random/boot_id"], TestContext.CancellationToken);
        Assert.AreEqual(0, result.ExitCode);
    }
}
