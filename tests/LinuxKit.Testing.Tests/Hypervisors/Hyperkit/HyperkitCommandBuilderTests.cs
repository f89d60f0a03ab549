using LinuxKit.Testing.State;
using System.Runtime.InteropServices;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Hyperkit;
using LinuxKit.Testing.Images;
using Snapshooter;
using Snapshooter.Xunit;

namespace LinuxKit.Testing.Tests.Hypervisors.Hyperkit;

public class HyperkitCommandBuilderTests
{
    private const string Dir = "/state/vms/0123abcd";

    private static VmSpec Spec(LinuxKitImage image, string? bootDisk = null) => new()
    {
        Id = "0123abcd",
        Image = image,
        BootDisk = bootDisk,
        MemoryMb = 512,
        Cpus = 2,
        SshPort = 40022,
        Files = new VmFiles("0123abcd", Dir),
    };

    private static readonly HyperkitLayout VpnKit = new(new VmFiles("0123abcd", Dir), HyperkitNetworking.VpnKit, "/firmware/UEFI.fd");

    public static TheoryData<string> Formats => ["kernel", "iso", "qcow2", "vmdk", "raw"];

    private static VmSpec SpecFor(string format) => format switch
    {
        "kernel" => Spec(new LinuxKitImage { Format = ImageFormat.KernelInitrd, Path = "/images/os-kernel", Initrd = "/images/os-initrd.img", CommandLine = "console=ttyS0 quiet" }),
        "iso" => Spec(new LinuxKitImage { Format = ImageFormat.Iso, Path = "/images/os-efi.iso" }),
        "qcow2" => Spec(new LinuxKitImage { Format = ImageFormat.Qcow2, Path = "/images/os-efi.qcow2" }, Dir + "/disk.img"),
        "vmdk" => Spec(new LinuxKitImage { Format = ImageFormat.Vmdk, Path = "/images/os.vmdk" }, Dir + "/disk.img"),
        "raw" => Spec(new LinuxKitImage { Format = ImageFormat.Raw, Path = "/images/os-efi.img" }, Dir + "/disk.img"),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Command_line_for_each_format_matches_snapshot(string format) =>
        Snapshot.Match(HyperkitCommandBuilder.Build(SpecFor(format), VpnKit), SnapshotNameExtension.Create(format));

    [Fact]
    public void Vmnet_networking_has_a_plain_virtio_net_and_no_vpnkit_devices() =>
        Snapshot.Match(HyperkitCommandBuilder.Build(SpecFor("kernel"), VpnKit with { Networking = HyperkitNetworking.VmNet }));

    [Fact]
    public void Vpnkit_and_published_ports_match_snapshot() =>
        Snapshot.Match(new
        {
            VpnKit = HyperkitCommandBuilder.VpnKit(VpnKit),
            Ssh = HyperkitCommandBuilder.ExposePort(VpnKit, new PortForward(40022, 22)),
            Web = HyperkitCommandBuilder.ExposePort(VpnKit, new PortForward(8080, 80)),
        });

    [Fact]
    public void Every_disk_format_reaches_hyperkit_as_the_raw_copy_never_the_image()
    {
        foreach (var format in new[] { "qcow2", "vmdk", "raw" })
        {
            var args = HyperkitCommandBuilder.Build(SpecFor(format), VpnKit);
            Assert.Contains($"2:0,virtio-blk,{Dir}/disk.img", args);
            Assert.DoesNotContain(args, a => a.Contains("/images/", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_path_with_a_comma_is_refused_naming_it()
    {
        var spec = SpecFor("kernel") with { Files = new VmFiles("0123abcd", "/state/a,b") };

        var e = Assert.Throws<LinuxKitException>(() => HyperkitCommandBuilder.Build(spec, VpnKit));

        Assert.Contains("/state/a,b/metadata.iso", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_vm_uuid_is_stable_per_vm_and_differs_between_vms()
    {
        Assert.Equal(HyperkitCommandBuilder.StableUuid("0123abcd"), HyperkitCommandBuilder.StableUuid("0123abcd"));
        Assert.NotEqual(HyperkitCommandBuilder.StableUuid("0123abcd"), HyperkitCommandBuilder.StableUuid("0123abce"));
        Assert.Matches("^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", HyperkitCommandBuilder.StableUuid("0123abcd"));
    }

    [Fact]
    public void The_vpnkit_key_carries_the_guest_address_in_its_last_four_bytes() =>
        Assert.Equal("00000000-0000-0000-0000-0000c0a84102", HyperkitCommandBuilder.VpnKitKey("192.168.65.2"));
}

public class HypervisorSelectionTests
{
    [Theory]
    [InlineData(HypervisorKind.Qemu, true, Architecture.X64, true, HypervisorKind.Qemu)]
    [InlineData(HypervisorKind.Hyperkit, false, Architecture.X64, false, HypervisorKind.Hyperkit)]
    [InlineData(HypervisorKind.Auto, false, Architecture.X64, true, HypervisorKind.Qemu)]
    [InlineData(HypervisorKind.Auto, true, Architecture.X64, true, HypervisorKind.Hyperkit)]
    public void An_explicit_choice_wins_and_auto_takes_hyperkit_only_on_an_intel_mac_that_has_it(
        HypervisorKind requested, bool isMacOS, Architecture architecture, bool hyperkitOnPath, HypervisorKind expected)
    {
        var (kind, message) = HypervisorSelection.Choose(requested, isMacOS, architecture, () => hyperkitOnPath);

        Assert.Equal(expected, kind);
        Assert.Null(message);
    }

    [Fact]
    public void Apple_silicon_uses_qemu_with_hvf_and_says_why()
    {
        var (kind, message) = HypervisorSelection.Choose(HypervisorKind.Auto, isMacOS: true, Architecture.Arm64, hyperkitOnPath: () => true);

        Assert.Equal(HypervisorKind.Qemu, kind);
        Assert.Contains("hyperkit does not run", message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_intel_mac_without_hyperkit_uses_qemu_and_says_why()
    {
        var (kind, message) = HypervisorSelection.Choose(HypervisorKind.Auto, isMacOS: true, Architecture.X64, hyperkitOnPath: () => false);

        Assert.Equal(HypervisorKind.Qemu, kind);
        Assert.Contains("not on PATH", message, StringComparison.Ordinal);
    }
}
