using LinuxKit.Testing.NUnit;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.Fixtures)]

namespace NUnit5Sample;

// Each fixture boots its own VM; the two run in parallel.
public class GuestTests : LinuxKitFixture
{
    [Test]
    public async Task Guest_runs_linux() =>
        Assert.That((await ExecAsync("uname", "-s")).Stdout, Is.EqualTo("Linux\n"));

    // A failed test's output gets the console lines the VM wrote while it ran; LINUXKIT_SAMPLE_FAIL=1
    // fails this one to show it.
    [Test]
    public async Task Console_lines_written_during_a_failed_test_go_to_its_output()
    {
        await ExecAsync("sh", "-c", "echo sample: written to the console during this test > /dev/console");
        Assert.That(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"), Is.Null);
    }
}

public class SecondFixtureTests : LinuxKitFixture
{
    [Test]
    public async Task Serial_console_shows_the_boot() =>
        Assert.That(await ReadConsoleAsync(), Does.Contain("Welcome to LinuxKit"));
}
