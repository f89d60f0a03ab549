using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Hyperkit;
using LinuxKit.Testing.Images;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing.Tests.Hypervisors.Hyperkit;

/// <summary>What the Hyperkit backend refuses before anything is allocated, and why.</summary>
public class HyperkitHypervisorTests
{
    // Any existing file stands in for the binaries: validation only looks them up.
    private static HyperkitHypervisor Hyperkit(HyperkitOptions? options = null) =>
        new((options ?? new HyperkitOptions()) with { Binary = "/bin/true" }, NullLogger.Instance);

    private static readonly LinuxKitImage Kernel = new() { Format = ImageFormat.KernelInitrd, Path = "/images/lk-kernel", Initrd = "/images/lk-initrd.img", CommandLine = "console=ttyS0" };
    private static readonly LinuxKitImage Qcow2 = new() { Format = ImageFormat.Qcow2, Path = "/images/lk.qcow2" };

    [Fact]
    public void A_kernel_initrd_image_without_volumes_is_accepted() =>
        Assert.Null(Record.Exception(() => Hyperkit().Validate(Kernel, new RunOptions())));

    [Fact]
    public void Volumes_are_refused_saying_to_use_qemu()
    {
        var options = new RunOptions { Volumes = new Dictionary<string, string> { ["/tmp"] = "/mnt" } };

        var e = Assert.Throws<LinuxKitException>(() => Hyperkit().Validate(Kernel, options));

        Assert.Contains("cannot share host folders", e.Message, StringComparison.Ordinal);
        Assert.Contains("Hypervisor = Qemu", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Direct_kernel_boot_of_a_disk_is_refused_rather_than_ignored_saying_to_use_qemu()
    {
        var e = Assert.Throws<LinuxKitException>(() => Hyperkit().Validate(Qcow2, new RunOptions { DirectKernelBoot = true }));
        Assert.Contains("DirectKernelBoot is not available with Hyperkit", e.Message, StringComparison.Ordinal);
        Assert.Null(Record.Exception(() => Hyperkit().Validate(Kernel, new RunOptions { DirectKernelBoot = true })));
    }

    [Fact]
    public void Vmnet_networking_is_refused_saying_to_use_vpnkit()
    {
        var e = Assert.Throws<LinuxKitException>(() => Hyperkit(new HyperkitOptions { Networking = HyperkitNetworking.VmNet }).Validate(Kernel, new RunOptions()));

        Assert.Contains("HyperkitNetworking.VpnKit", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_disk_image_without_firmware_is_refused_pointing_to_the_kernel_initrd_output()
    {
        var e = Assert.Throws<LinuxKitException>(() => Hyperkit().Validate(Qcow2, new RunOptions()));

        Assert.Contains("HyperkitOptions.Firmware", e.Message, StringComparison.Ordinal);
        Assert.Contains("kernel+initrd", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_qcow2_image_without_qemu_img_is_refused_with_the_conversion_to_run_by_hand()
    {
        var firmware = Path.GetTempFileName();
        try
        {
            var hyperkit = Hyperkit(new HyperkitOptions { Firmware = firmware, QemuImg = "/no/such/qemu-img" });

            var e = Assert.Throws<LinuxKitException>(() => hyperkit.Validate(Qcow2, new RunOptions()));

            Assert.Contains("qemu-img convert -O raw '/images/lk.qcow2'", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(firmware);
        }
    }
}
