using LinuxKit.Testing.Hypervisors;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using LinuxKit.Testing.Testcontainers;

namespace LinuxKit.Testing.Tests.Testcontainers;

public class LinuxKitBuilderTests
{
    [Fact]
    public void Each_with_method_returns_a_new_builder_and_leaves_the_old_one_unchanged()
    {
        var basic = new LinuxKitBuilder().WithImage("os.iso");
        var bigger = basic.WithMemory(2048).WithPortBinding(80, assignRandomHostPort: true);

        Assert.Equal(1024, basic.Configuration.Options.Memory);
        Assert.Empty(basic.Configuration.Options.Ports);
        Assert.Equal(2048, bigger.Configuration.Options.Memory);
        Assert.Equal([new PortMapping(0, 80)], bigger.Configuration.Options.Ports);
    }

    [Fact]
    public void Port_bindings_follow_testcontainers_meaning()
    {
        var builder = new LinuxKitBuilder()
            .WithPortBinding(8080, assignRandomHostPort: false)
            .WithPortBinding(9000, 90)
            .WithPortBinding(443, assignRandomHostPort: true);

        Assert.Equal([new PortMapping(8080, 8080), new PortMapping(9000, 90), new PortMapping(0, 443)], builder.Configuration.Options.Ports);
    }

    [Fact]
    public void Build_without_an_image_says_to_call_with_image()
    {
        var e = Assert.Throws<ArgumentException>(() => new LinuxKitBuilder().Build());

        Assert.Contains("WithImage", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_with_an_option_out_of_range_names_it()
    {
        var e = Assert.Throws<ArgumentException>(() => new LinuxKitBuilder().WithImage("os.iso").WithCpus(0).Build());

        Assert.Contains("Cpus", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_knob_lands_in_the_core_options()
    {
        var builder = new LinuxKitBuilder().WithImage("os.iso")
            .WithName("db").WithCpus(2).WithSshKey("/keys/id").WithSshUser("linuxkit").WithSshPort(2222)
            .WithBootTimeout(TimeSpan.FromSeconds(30)).WithBindMount("/data", "/mnt/data").WithGracefulStop()
            .WithWarmStart(false).WithUniqueClones().WithHypervisor(HypervisorKind.Qemu).WithStateDirectory("/state");

        Assert.Equal(
            new RunOptions
            {
                Name = "db", Cpus = 2, SshKey = "/keys/id", SshUser = "linuxkit", SshPort = 2222, BootTimeout = TimeSpan.FromSeconds(30),
                StopMode = StopMode.Graceful, WarmStart = false, UniqueClones = true, Volumes = builder.Configuration.Options.Volumes,
            },
            builder.Configuration.Options);
        Assert.Equal("/mnt/data", builder.Configuration.Options.Volumes["/data"]);
        Assert.Equal(HypervisorKind.Qemu, builder.Configuration.ManagerOptions.Hypervisor);
        Assert.Equal("/state", builder.Configuration.ManagerOptions.StateDirectory);
    }

    [Fact]
    public void Build_checks_the_boot_timeout_through_the_options()
    {
        var e = Assert.Throws<ArgumentException>(() => new LinuxKitBuilder().WithImage("os.iso").WithBootTimeout(TimeSpan.Zero).Build());

        Assert.Contains("RunOptions.BootTimeout", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Members_that_need_a_started_vm_say_to_start_it()
    {
        await using var container = new LinuxKitBuilder().WithImage("os.iso").WithPortBinding(80, true).Build();

        Assert.Equal(TestcontainersStates.Undefined, container.State);
        Assert.Contains("StartAsync", Assert.Throws<InvalidOperationException>(() => container.GetMappedPublicPort(80)).Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => container.ExecAsync(["true"]));
    }

    [Fact]
    public async Task Docker_network_members_are_not_supported_and_say_why()
    {
        await using var container = new LinuxKitBuilder().WithImage("os.iso").Build();

        var e = await Assert.ThrowsAsync<NotSupportedException>(() => container.ConnectAsync("my-network"));
        Assert.Contains("not attached to Docker networks", e.Message, StringComparison.Ordinal);
        Assert.Throws<NotSupportedException>(() => container.GetConnectionString(ConnectionMode.Container));
    }

    [Fact]
    public void Testcontainers_file_modes_are_the_same_bits_as_dotnet_unix_file_modes()
    {
        // LinuxKitContainer.CopyAsync casts one to the other.
        Assert.Equal((int)UnixFileMode.UserRead, (int)UnixFileModes.UserRead);
        Assert.Equal((int)UnixFileMode.OtherExecute, (int)UnixFileModes.OtherExecute);
        Assert.Equal((int)UnixFileMode.SetUser, (int)UnixFileModes.SetUser);
        Assert.Equal((int)UnixFileMode.StickyBit, (int)UnixFileModes.StickyBit);
        Assert.Equal((int)Unix.FileMode644, Convert.ToInt32("644", 8));
    }
}
