using System.Text;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// LinuxKit's other outputs with default options (nothing names the firmware or the
/// architecture): an ISO and a qcow2 that only UEFI boots, and an arm64 kernel+initrd, which
/// runs under qemu-system-aarch64 (TCG here: slow, so these tests are few). Each boots cold and
/// warm, runs a command, copies a file, reads the console and stops with nothing left.
/// </summary>
[Trait("Category", "Integration")]
[Trait("Category", "Architectures")]
public class FirmwareAndArchitectureTests
{
    public static TheoryData<string, bool> ImagesWarmAndCold()
    {
        var rows = new TheoryData<string, bool>();
        foreach (var image in new[] { "iso-efi", "qcow2-efi", "arm64" })
            foreach (var warm in new[] { true, false })
                rows.Add(image, warm);
        return rows;
    }

    [Theory]
    [MemberData(nameof(ImagesWarmAndCold))]
    public async Task A_uefi_only_or_arm64_image_boots_with_default_options_warm_and_cold(string format, bool warm)
    {
        var image = TestEnvironment.Image(format);
        var before = TestEnvironment.Hashes(image);
        var logger = new RecordingLogger();
        await using var scratch = new ScratchManager(logger);
        var options = ScratchManager.Small with { WarmStart = warm };

        // Warm: the first VM makes the template, the second is restored from it.
        for (var vmNumber = 1; vmNumber <= (warm ? 2 : 1); vmNumber++)
        {
            var vm = await scratch.Manager.RunAsync(image, options);
            if (warm) Assert.NotNull(vm.WarmStartTemplate);
            else Assert.Null(vm.WarmStartTemplate);

            var machine = await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "uname -m; ls /sys/firmware"]);
            Assert.Equal(0, machine.ExitCode);
            Assert.StartsWith(format == "arm64" ? "aarch64\n" : "x86_64\n", machine.Stdout, StringComparison.Ordinal);
            // The kernel sees EFI runtime services only when UEFI booted it.
            Assert.Equal(format != "arm64", machine.Stdout.Contains("efi", StringComparison.Ordinal));

            await scratch.Manager.WriteFileAsync(vm.Id, "/root/note.txt", new MemoryStream(Encoding.UTF8.GetBytes($"vm {vmNumber}")), (UnixFileMode)0x180, 0, 0);
            Assert.Equal($"vm {vmNumber}", Encoding.UTF8.GetString(await scratch.Manager.ReadFileAsync(vm.Id, "/root/note.txt")));
            // The program a warm-start clone reseeds its random generator with, built for the
            // guest's architecture: on /dev/null the ioctl is unknown (ENOTTY, 25), proof it ran.
            var architecture = format == "arm64" ? GuestArchitecture.Arm64 : GuestArchitecture.X64;
            await scratch.Manager.WriteFileAsync(vm.Id, "/root/reseed", new MemoryStream(Templates.CloneIdentity.ReseedProgram(architecture).ToArray()), (UnixFileMode)0x1C0, 0, 0);
            Assert.Equal(25, (await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "/root/reseed < /dev/null"])).ExitCode);

            var console = string.Join('\n', (await scratch.Manager.ReadConsoleAsync(vm.Id)).Select(l => l.Text));
            Assert.Contains("Welcome to LinuxKit", console, StringComparison.Ordinal);

            await scratch.Manager.StopAsync(vm.Id);
            Assert.False(TestEnvironment.IsRunning(vm.Pid));
        }
        Assert.Equal(before, TestEnvironment.Hashes(image));
        // A clone renewed its clock and random state as on any other guest.
        Assert.DoesNotContain(logger.Lines, m => m.Contains("keep the template's clock", StringComparison.Ordinal));
        if (format == "arm64") Assert.Contains(logger.Lines, m => m.Contains("arm64 guests run under TCG emulation", StringComparison.Ordinal));
        else Assert.Contains(logger.Lines, m => m.Contains("booting under UEFI", StringComparison.Ordinal));
    }
}

/// <summary>What each test image's content says about how it boots, as LinuxKit's outputs are laid out.</summary>
[Trait("Category", "Integration")]
public class ImageBootContentTests
{
    [Theory]
    [InlineData("kernel", GuestArchitecture.X64, false, "a kernel is loaded directly")]
    [InlineData("arm64", GuestArchitecture.Arm64, false, "a kernel is loaded directly")]
    [InlineData("iso", GuestArchitecture.X64, false, "its El Torito catalog has a BIOS entry only")]
    [InlineData("iso-efi", GuestArchitecture.X64, true, "its El Torito catalog has an EFI entry only holding BOOTX64.EFI")]
    [InlineData("raw", GuestArchitecture.X64, false, "it has an MBR without an EFI System Partition and BIOS boot code")]
    [InlineData("qcow2", GuestArchitecture.X64, false, "it has an MBR without an EFI System Partition and BIOS boot code")]
    [InlineData("qcow2-efi", GuestArchitecture.X64, true, "it has a GPT with an EFI System Partition and no BIOS boot code holding BOOTX64.EFI")]
    [InlineData("vmdk", GuestArchitecture.X64, false, "a Vmdk image's boot records are not read")]
    public void Each_output_is_read_for_its_architecture_and_firmware(string format, GuestArchitecture architecture, bool uefi, string evidence)
    {
        var image = Images.LinuxKitImage.Resolve(TestEnvironment.Image(format));
        var boot = Images.FirmwareChoice.Decide(image, Firmware.Auto, GuestArchitecture.Auto);
        Assert.Equal((architecture, uefi), (boot.Architecture, boot.Uefi));
        Assert.Equal(evidence, image.Content.Evidence);
    }
}
