using LinuxKit.Testing.TUnit;

namespace TUnitSample;

// One VM for this class's tests: TUnit boots it before the first and stops it after the last.
[ClassDataSource<LinuxKitVm>(Shared = SharedType.PerClass)]
public class GuestTests(LinuxKitVm vm)
{
    [Test]
    public async Task Guest_runs_linux()
    {
        var result = await vm.ExecAsync(["uname", "-s"], TestContext.Current!.Execution.CancellationToken);
        await Assert.That(result.Stdout).IsEqualTo("Linux\n");
    }

    [Test]
    public async Task Serial_console_shows_the_boot() =>
        await Assert.That(await vm.ReadConsoleAsync()).Contains("Welcome to LinuxKit");

    [Test]
    public async Task Console_lines_written_during_a_test_go_to_its_output()
    {
        await vm.ExecAsync(["sh", "-c", "echo sample: written to the console during this test > /dev/console"], TestContext.Current!.Execution.CancellationToken);
        await Task.Delay(500); // the console is followed every 0.1 s
        // LINUXKIT_SAMPLE_FAIL=1 fails this test, to see the console line beside the failure.
        await Assert.That(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL")).IsNull();
    }
}

// One VM for every class that asks for the assembly's.
[ClassDataSource<LinuxKitVm>(Shared = SharedType.PerAssembly)]
public class AssemblyVmTests(LinuxKitVm vm)
{
    [Test]
    public async Task The_assembly_vm_answers() =>
        await Assert.That((await vm.ExecAsync("true")).ExitCode).IsEqualTo(0);
}
