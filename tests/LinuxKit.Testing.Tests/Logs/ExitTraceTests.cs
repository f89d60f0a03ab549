using LinuxKit.Testing.Logs;

namespace LinuxKit.Testing.Tests.Logs;

public sealed class ExitTraceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lkt-exit-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private int? Infer(string hypervisorLog, string console)
    {
        File.WriteAllText(Path.Combine(_dir, "hypervisor.log"), hypervisorLog);
        File.WriteAllText(Path.Combine(_dir, "console.log"), console);
        return ExitTrace.Infer(Path.Combine(_dir, "hypervisor.log"), Path.Combine(_dir, "console.log"));
    }

    [Fact]
    public void A_hypervisor_that_logged_a_terminating_signal_ended_with_128_plus_it() =>
        Assert.Equal(143, Infer("qemu-system-x86_64: terminating on signal 15 from pid 4242 (kill)\n", "Welcome to LinuxKit\n"));

    [Fact]
    public void A_guest_that_printed_the_power_down_line_ended_with_0() =>
        Assert.Equal(0, Infer("", "Welcome to LinuxKit\n[   12.5] reboot: Power down\n"));

    [Fact]
    public void An_end_without_a_trace_is_unknown() =>
        Assert.Null(Infer("", "Welcome to LinuxKit\n"));
}
