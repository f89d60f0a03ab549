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
