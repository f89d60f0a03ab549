using LinuxKit.Testing.NUnit;
using NUnit.Framework;

[assembly: Parallelizable(ParallelScope.Fixtures)]

namespace NUnitSample;

// Each fixture boots its own VM; the two run in parallel without port clashes.
public class GuestTests : LinuxKitFixture
{
    [Test]
    public async Task Guest_runs_linux() =>
        Assert.That((await ExecAsync("uname", "-s")).Stdout, Is.EqualTo("Linux\n"));

    [Test]
    public async Task Arguments_arrive_unchanged() =>
        Assert.That((await ExecAsync("echo", "a b; rm -rf /")).Stdout, Is.EqualTo("a b; rm -rf /\n"));

    // A failed test's output gets the console lines the VM wrote while it ran (LinuxKitFixture's
    // TearDown); LINUXKIT_SAMPLE_FAIL=1 fails this one to show it.
    [Test]
    public async Task Console_lines_written_during_a_failed_test_go_to_its_output()
    {
        await ExecAsync("sh", "-c", "echo sample: written to the console during this test > /dev/console");
        Assert.That(Environment.GetEnvironmentVariable("LINUXKIT_SAMPLE_FAIL"), Is.Null);
    }
}

public class SmallVmTests : LinuxKitFixture
{
    protected override void Configure() => Options = Options with { Memory = 256 };

    [Test]
    public void Configured_memory_is_applied() => Assert.That(Container.Memory, Is.EqualTo(256));

    [Test]
    public async Task Serial_console_shows_the_boot() =>
        Assert.That(await ReadConsoleAsync(), Does.Contain("Welcome to LinuxKit"));
}
