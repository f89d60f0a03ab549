using LinuxKit.Testing.Fixtures;

namespace LinuxKit.Testing.Tests;

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
