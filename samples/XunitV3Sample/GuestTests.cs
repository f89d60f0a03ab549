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

public class ConsoleTests(LinuxKitVm vm)
{
    [Fact]
    public async Task Serial_console_shows_the_boot() =>
        Assert.Contains("Welcome to LinuxKit", await vm.ReadConsoleAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
}
