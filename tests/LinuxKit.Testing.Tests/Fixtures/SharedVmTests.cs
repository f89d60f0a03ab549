using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Fixtures;

namespace LinuxKit.Testing.Tests.Fixtures;

[Collection(ProcessEnvironment.Name)]
public class SharedVmTests
{
    [Fact]
    public async Task Starting_without_any_image_configured_says_how_to_configure_one()
    {
        await using var vm = new SharedVm();
        vm.ApplyDefaults(typeof(SharedVmTests).Assembly);
        if (Environment.GetEnvironmentVariable(LinuxKitEnvironment.Image) is not null || Environment.GetEnvironmentVariable(LinuxKitEnvironment.VmId) is not null)
            return; // a developer's own hand-off is set: nothing to prove here
        var e = await Assert.ThrowsAsync<LinuxKitException>(() => vm.StartAsync());
        Assert.Contains("[assembly: LinuxKitImage(", e.Message, StringComparison.Ordinal);
        Assert.Contains(LinuxKitEnvironment.Image, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Container_before_start_is_an_error_not_a_null()
    {
        await using var vm = new SharedVm();
        Assert.Throws<InvalidOperationException>(() => vm.Container);
    }

    [Fact]
    public async Task Options_set_in_configuration_survive_defaults()
    {
        await using var vm = new SharedVm { Options = new RunOptions { Memory = 256 }, Image = "/images/os.iso" };
        vm.ApplyDefaults(typeof(SharedVmTests).Assembly);
        Assert.Equal(256, vm.Options.Memory);
        Assert.Equal("/images/os.iso", vm.Image);
    }
}

[LinuxKitImage("/images/class-level.iso", Memory = 384)]
internal sealed class AttributedVm : SharedVm;

public class SharedVmAttributeTests
{
    [Fact]
    public async Task Attribute_on_the_fixture_class_wins_over_the_assembly()
    {
        await using var vm = new AttributedVm();
        vm.ApplyDefaults(typeof(SharedVmAttributeTests).Assembly);
        Assert.Equal("/images/class-level.iso", vm.Image);
        Assert.Equal(384, vm.Options.Memory);
    }
}

[LinuxKitImage("/images/full.iso", SshKey = "/keys/id", SshUser = "linuxkit", SshPort = 2222, Ports = ["8080:80"], GuestPorts = [5432],
    Volumes = ["/data:/mnt/data"], BootTimeout = 30, GracefulStop = true, WarmStart = false, UniqueClones = true, DirectKernelBoot = false, Hypervisor = HypervisorKind.Qemu, StateDirectory = "/state")]
internal sealed class FullyAttributedVm : SharedVm;

[LinuxKitImage("/images/bad.iso", Ports = ["8080"])]
internal sealed class BadPortsVm : SharedVm;

public class LinuxKitImageAttributeTests
{
    [Fact]
    public async Task Every_knob_of_the_attribute_lands_in_the_run_and_manager_options()
    {
        await using var vm = new FullyAttributedVm();
        vm.ApplyDefaults(typeof(LinuxKitImageAttributeTests).Assembly);

        Assert.Equal("/keys/id", vm.Options.SshKey);
        Assert.Equal("linuxkit", vm.Options.SshUser);
        Assert.Equal(2222, vm.Options.SshPort);
        Assert.Equal([new PortMapping(0, 5432), new PortMapping(8080, 80)], vm.Options.Ports);
        Assert.Equal("/mnt/data", vm.Options.Volumes["/data"]);
        Assert.Equal(TimeSpan.FromSeconds(30), vm.Options.BootTimeout);
        Assert.Equal(StopMode.Graceful, vm.Options.StopMode);
        Assert.False(vm.Options.WarmStart);
        Assert.True(vm.Options.UniqueClones);
        Assert.Equal(false, vm.Options.DirectKernelBoot); // set to false: never, not the default's choice by image
        Assert.Equal(HypervisorKind.Qemu, vm.ManagerOptions.Hypervisor);
        Assert.Equal("/state", vm.ManagerOptions.StateDirectory);
    }

    [Fact]
    public void What_the_attribute_leaves_unset_keeps_the_run_options_defaults()
    {
        var attribute = new LinuxKitImageAttribute("/images/os.iso");
        var defaults = new RunOptions();

        Assert.Equal(defaults.Memory, attribute.Memory);
        Assert.Equal(defaults.Cpus, attribute.Cpus);
        Assert.Equal(defaults.SshUser, attribute.SshUser);
        Assert.Equal(defaults.BootTimeout, TimeSpan.FromSeconds(attribute.BootTimeout));
        Assert.Null(attribute.ApplyTo(defaults, path => path).DirectKernelBoot);
    }

    [Fact]
    public async Task A_port_not_written_host_colon_guest_is_refused_naming_the_attribute()
    {
        await using var vm = new BadPortsVm();

        var e = Assert.Throws<LinuxKitException>(() => vm.ApplyDefaults(typeof(LinuxKitImageAttributeTests).Assembly));

        Assert.StartsWith("LinuxKitImage Ports: Port '8080' is not HOST:GUEST", e.Message, StringComparison.Ordinal);
    }
}
