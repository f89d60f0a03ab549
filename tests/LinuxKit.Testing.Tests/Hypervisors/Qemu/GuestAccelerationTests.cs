using System.Runtime.InteropServices;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;

namespace LinuxKit.Testing.Tests.Hypervisors.Qemu;

public class GuestAccelerationTests
{
    [Theory]
    [InlineData(GuestArchitecture.X64, Architecture.X64)]
    [InlineData(GuestArchitecture.Arm64, Architecture.Arm64)] // Apple Silicon, Graviton: probed for hvf or KVM
    public void A_guest_of_the_hosts_architecture_is_left_to_the_probe(GuestArchitecture guest, Architecture host) =>
        Assert.Equal((null, null), GuestAcceleration.Decide(Accelerator.Auto, guest, host));

    [Theory]
    [InlineData(GuestArchitecture.Arm64, Architecture.X64, "arm64 guests run under TCG emulation on this x86_64 host")]
    [InlineData(GuestArchitecture.X64, Architecture.Arm64, "x86_64 guests run under TCG emulation on this arm64 host")] // x86 images on Apple Silicon
    public void A_guest_of_another_architecture_runs_under_TCG_with_a_message(GuestArchitecture guest, Architecture host, string message)
    {
        var (accelerator, said) = GuestAcceleration.Decide(Accelerator.Auto, guest, host);
        Assert.Equal(Accelerator.Tcg, accelerator);
        Assert.StartsWith(message, said, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Accelerator.Kvm)]
    [InlineData(Accelerator.Hvf)]
    public void A_native_accelerator_asked_for_a_foreign_guest_is_refused_by_name(Accelerator requested)
    {
        var error = Assert.Throws<LinuxKitException>(() => GuestAcceleration.Decide(requested, GuestArchitecture.Arm64, Architecture.X64));
        Assert.Contains($"The accelerator is {requested}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_accelerator_asked_for_is_used_when_it_can_run_the_guest() =>
        Assert.Equal((Accelerator.Kvm, null), GuestAcceleration.Decide(Accelerator.Kvm, GuestArchitecture.X64, Architecture.X64));
}
