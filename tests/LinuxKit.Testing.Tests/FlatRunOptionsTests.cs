using LinuxKit.Testing.Hypervisors;

namespace LinuxKit.Testing.Tests;

public class FlatRunOptionsTests
{
    [Fact]
    public void Seconds_switches_and_host_colon_guest_text_become_run_options()
    {
        var over = new RunOptions { Ports = [new PortMapping(9000, 90)], Volumes = new Dictionary<string, string> { ["/old"] = "/mnt/old" } };
        var options = new FlatRunOptions
        {
            Source = "Test",
            Name = "web",
            BootTimeoutSeconds = 42,
            GracefulStop = true,
            WarmStart = false,
            RestrictNetwork = true,
            Ports = ["8080:80"],
            GuestPorts = [443],
            Volumes = ["data:/mnt/data"],
            SshKey = "key",
        }.ApplyTo(over, path => "/base/" + path);

        Assert.Equal("web", options.Name);
        Assert.Equal(TimeSpan.FromSeconds(42), options.BootTimeout);
        Assert.Equal(StopMode.Graceful, options.StopMode);
        Assert.False(options.WarmStart);
        Assert.True(options.RestrictNetwork);
        Assert.Equal([new PortMapping(9000, 90), new PortMapping(0, 443), new PortMapping(8080, 80)], options.Ports);
        Assert.Equal(new Dictionary<string, string> { ["/old"] = "/mnt/old", ["/base/data"] = "/mnt/data" }, options.Volumes);
        Assert.Equal("/base/key", options.SshKey);
    }

    [Fact]
    public void What_is_left_unset_keeps_the_run_options_defaults()
    {
        var defaults = new RunOptions();
        var options = new FlatRunOptions { Source = "Test" }.ApplyTo(defaults, p => p);
        Assert.Equal(
            (defaults.Name, defaults.Memory, defaults.Cpus, defaults.BootTimeout, defaults.StopMode, defaults.WarmStart, defaults.UniqueClones, defaults.RestrictNetwork, defaults.Detach, defaults.SshKey, defaults.SshUser, defaults.SshPort),
            (options.Name, options.Memory, options.Cpus, options.BootTimeout, options.StopMode, options.WarmStart, options.UniqueClones, options.RestrictNetwork, options.Detach, options.SshKey, options.SshUser, options.SshPort));
        Assert.Empty(options.Ports);
        Assert.Empty(options.Volumes);
    }

    [Theory]
    [InlineData("8080", null, "Test Ports: ")]
    [InlineData("8080", "--publish", "--publish: ")]
    public void A_bad_port_is_refused_in_the_adapters_own_spelling(string port, string? spelling, string expected)
    {
        var e = Assert.Throws<LinuxKitException>(() => new FlatRunOptions { Source = "Test", PortsSpelling = spelling, Ports = [port] }.ApplyTo(new RunOptions(), p => p));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_volume_is_refused_in_the_adapters_own_spelling()
    {
        var e = Assert.Throws<LinuxKitException>(() => new FlatRunOptions { Source = "Test", VolumesSpelling = "--volume", Volumes = ["nocolon"] }.ApplyTo(new RunOptions(), p => p));
        Assert.StartsWith("--volume has 'nocolon'", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, HypervisorKind.Auto)]
    [InlineData("", HypervisorKind.Auto)]
    [InlineData("QEMU", HypervisorKind.Qemu)]
    [InlineData("kubevirt", HypervisorKind.KubeVirt)]
    public void Hypervisors_are_read_by_name(string? text, HypervisorKind expected) =>
        Assert.Equal(expected, FlatRunOptions.ParseHypervisor(text, "Test"));

    [Theory]
    [InlineData("virtualbox")]
    [InlineData("1")]
    public void Anything_else_is_refused_with_the_names_that_work(string text)
    {
        var e = Assert.Throws<LinuxKitException>(() => FlatRunOptions.ParseHypervisor(text, "Test"));
        Assert.Contains($"Hypervisor is '{text}': use qemu, hyperkit, kubevirt", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("uefi", "aarch64", Firmware.Uefi, GuestArchitecture.Arm64)]
    [InlineData("BIOS", "x86_64", Firmware.Bios, GuestArchitecture.X64)]
    [InlineData("auto", "amd64", Firmware.Auto, GuestArchitecture.X64)]
    [InlineData(null, null, Firmware.Auto, GuestArchitecture.Auto)]
    public void Firmware_and_architecture_are_read_as_the_tools_spell_them(string? firmware, string? architecture, Firmware expectedFirmware, GuestArchitecture expectedArchitecture)
    {
        var options = new FlatRunOptions { Source = "run", Firmware = firmware, Architecture = architecture }.ApplyTo(new RunOptions(), p => p);
        Assert.Equal((expectedFirmware, expectedArchitecture), (options.Firmware, options.Architecture));
    }

    [Theory]
    [InlineData("efi", null, "run: Firmware is 'efi': use auto, bios or uefi.")]
    [InlineData("2", null, "run: Firmware is '2'")]
    [InlineData(null, "riscv64", "run: Architecture is 'riscv64': use auto, x64 (amd64, x86_64) or arm64 (aarch64).")]
    public void A_firmware_or_architecture_that_names_none_is_refused_naming_the_adapter(string? firmware, string? architecture, string message)
    {
        var error = Assert.Throws<LinuxKitException>(() => new FlatRunOptions { Source = "run", Firmware = firmware, Architecture = architecture }.ApplyTo(new RunOptions(), p => p));
        Assert.StartsWith(message, error.Message, StringComparison.Ordinal);
    }
}
