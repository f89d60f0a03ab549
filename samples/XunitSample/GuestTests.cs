using LinuxKit.Testing.Xunit;
using Xunit;

namespace XunitSample;

// One VM for all the tests in this class: booted before the first, stopped after the last.
public class GuestTests(LinuxKitVm vm) : IClassFixture<LinuxKitVm>
{
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
