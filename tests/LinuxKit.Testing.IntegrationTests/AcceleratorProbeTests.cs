using LinuxKit.Testing.Hypervisors.Qemu;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The KVM probe's own guest and command line, run where they can always run (TCG): a probe
/// whose guest never finishes would take every host for one without KVM.
/// </summary>
[Trait("Category", "Integration")]
public class AcceleratorProbeTests
{
    [Fact]
    public async Task The_probe_guest_runs_its_loop_to_the_end_under_tcg()
    {
        var qemu = Processes.ProcessRunner.FindOnPath("qemu-system-x86_64");
        Assert.NotNull(qemu);
        Assert.Null(await AcceleratorProbe.RunProbeGuestAsync(qemu, "tcg"));
    }
}
