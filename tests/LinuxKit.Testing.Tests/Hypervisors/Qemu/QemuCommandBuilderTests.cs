using LinuxKit.Testing.State;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;
using LinuxKit.Testing.Images;
using Snapshooter;
using Snapshooter.Xunit;

namespace LinuxKit.Testing.Tests.Hypervisors.Qemu;

public class QemuCommandBuilderTests
{
    private static VmSpec Spec(LinuxKitImage image, string? bootDisk = null) => new()
    {
        Id = "0123abcd",
        Image = image,
        BootDisk = bootDisk,
        MemoryMb = 512,
        Cpus = 2,
        SshPort = 40022,
        Files = new VmFiles("0123abcd", "/state/vms/0123abcd"),
    };

    public static TheoryData<string> Formats => ["kernel", "iso", "qcow2", "vmdk", "raw"];

    private static VmSpec SpecFor(string format) => format switch
    {
        "kernel" => Spec(new LinuxKitImage
        {
            Format = ImageFormat.KernelInitrd,
            Path = "/images/os-kernel",
            Initrd = "/images/os-initrd.img",
            CommandLine = "console=ttyS0 quiet",
        }),
        "iso" => Spec(new LinuxKitImage { Format = ImageFormat.Iso, Path = "/images/os.iso" }),
        "qcow2" => Spec(new LinuxKitImage { Format = ImageFormat.Qcow2, Path = "/images/os.qcow2" }, "/state/vms/0123abcd/disk.qcow2"),
        "vmdk" => Spec(new LinuxKitImage { Format = ImageFormat.Vmdk, Path = "/images/os.vmdk" }, "/state/vms/0123abcd/disk.qcow2"),
        "raw" => Spec(new LinuxKitImage { Format = ImageFormat.Raw, Path = "/images/os-bios.img" }, "/state/vms/0123abcd/disk.qcow2"),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Command_line_for_each_format_matches_snapshot(string format)
    {
        var args = QemuCommandBuilder.Build(SpecFor(format), Accelerator.Tcg, qboot: Qboot);
        Snapshot.Match(args, SnapshotNameExtension.Create(format));
    }

    private const string Qboot = "/usr/share/qemu/qboot.rom";

    [Theory]
    [MemberData(nameof(Formats))]
    public void Only_a_cold_x86_kernel_boot_under_bios_uses_the_minimal_bios(string format)
    {
        var bios = QemuCommandBuilder.Build(SpecFor(format), Accelerator.Tcg, qboot: Qboot).ToList();
        var uefi = QemuCommandBuilder.Build(SpecFor(format) with { Boot = new FirmwareChoice(GuestArchitecture.X64, Uefi: true, Reason: null) }, Accelerator.Tcg, Ovmf, Qboot);
        var arm64 = QemuCommandBuilder.Build(SpecFor(format) with { Boot = new FirmwareChoice(GuestArchitecture.Arm64, Uefi: format != "kernel", Reason: null) }, Accelerator.Tcg, Ovmf, Qboot);
        var notInstalled = QemuCommandBuilder.Build(SpecFor(format), Accelerator.Tcg);
        var template = QemuCommandBuilder.Build(SpecFor(format) with { MemoryFile = new MemoryFile("/state/templates/t/ram", Shared: true) }, Accelerator.Tcg, qboot: Qboot);

        if (format == "kernel") Assert.Equal(Qboot, bios[bios.IndexOf("-bios") + 1]);
        else Assert.DoesNotContain("-bios", bios);
        Assert.DoesNotContain("-bios", uefi);
        Assert.DoesNotContain("-bios", arm64);
        Assert.DoesNotContain("-bios", notInstalled);
        Assert.DoesNotContain("-bios", template); // its vmgenid needs what only SeaBIOS does
    }

    [Theory]
    [InlineData("iso")]
    [InlineData("qcow2")]
    [InlineData("raw")]
    public void An_image_booted_directly_loads_the_copied_kernel_under_the_minimal_bios_and_keeps_its_disk_without_a_boot_index(string format)
    {
        var spec = SpecFor(format) with { Kernel = new KernelFiles("/state/vms/0123abcd/kernel", "/state/vms/0123abcd/initrd.img", "BOOT_IMAGE=/kernel console=ttyS0 initrd=/initrd.img") };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Tcg, qboot: Qboot).ToList();
        var firmwareBoot = QemuCommandBuilder.Build(SpecFor(format), Accelerator.Tcg, qboot: Qboot).ToList();

        Assert.Equal(Qboot, args[args.IndexOf("-bios") + 1]);
        Assert.Equal("/state/vms/0123abcd/kernel", args[args.IndexOf("-kernel") + 1]);
        Assert.Equal("/state/vms/0123abcd/initrd.img", args[args.IndexOf("-initrd") + 1]);
        Assert.Equal("BOOT_IMAGE=/kernel console=ttyS0 initrd=/initrd.img", args[args.IndexOf("-append") + 1]);
        // The same disk as a firmware boot, only without the boot index the loaded kernel takes.
        var disk = firmwareBoot.Single(a => a.Contains("drive=boot", StringComparison.Ordinal));
        Assert.Contains(disk.Replace(",bootindex=0", "", StringComparison.Ordinal), args);
        Assert.DoesNotContain(args, a => a.Contains("bootindex", StringComparison.Ordinal));
        // A warm-start template of it runs SeaBIOS, as every template does.
        Assert.DoesNotContain("-bios", QemuCommandBuilder.Build(spec with { MemoryFile = new MemoryFile("/t/ram", Shared: true) }, Accelerator.Tcg, qboot: Qboot));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void No_boot_loads_the_network_cards_boot_rom(string format)
    {
        foreach (var uefi in new[] { false, true })
        {
            var spec = SpecFor(format) with { Boot = new FirmwareChoice(GuestArchitecture.X64, uefi, Reason: null) };
            Assert.Contains("virtio-net-pci,netdev=net0,romfile=", QemuCommandBuilder.Build(spec, Accelerator.Tcg, uefi ? Ovmf : null, Qboot));
        }
    }

    [Fact]
    public void Ports_and_volumes_are_added_as_loopback_forwards_and_9p_shares()
    {
        var spec = SpecFor("kernel") with
        {
            Ports = [new PortForward(8080, 80), new PortForward(15432, 5432)],
            Volumes = [new VolumeShare("vol0", "/home/me/data", "/data")],
        };
        Snapshot.Match(QemuCommandBuilder.Build(spec, Accelerator.Kvm));
    }

    [Fact]
    public void A_template_keeps_its_ram_in_a_shared_file_and_a_clone_maps_it_privately_and_waits_for_the_state()
    {
        var template = QemuCommandBuilder.Build(SpecFor("qcow2") with { MemoryFile = new MemoryFile("/state/templates/k/memory.ram", Shared: true) }, Accelerator.Tcg);
        var clone = QemuCommandBuilder.Build(SpecFor("qcow2") with { MemoryFile = new MemoryFile("/state/templates/k/memory.ram", Shared: false), Incoming = true }, Accelerator.Tcg);
        Snapshot.Match(new { template, clone });
        Assert.DoesNotContain("-incoming", template);
        // The device set is what a saved state depends on: the same in both but for the share flag.
        var incoming = clone.ToList().IndexOf("-incoming");
        Assert.Equal("defer", clone[incoming + 1]);
        Assert.Equal(
            template.Where(a => !a.Contains("share=", StringComparison.Ordinal)),
            clone.Where((a, i) => i != incoming && i != incoming + 1 && !a.Contains("share=", StringComparison.Ordinal)));
    }

    [Fact]
    public void An_ordinary_boot_has_no_memory_file_and_no_generation_id()
    {
        var args = QemuCommandBuilder.Build(SpecFor("kernel"), Accelerator.Tcg);
        Assert.DoesNotContain(args, a => a.Contains("memory-backend", StringComparison.Ordinal) || a == "vmgenid" || a == "-incoming");
    }

    [Fact]
    public void Forwarded_ports_listen_on_loopback_only()
    {
        var spec = SpecFor("kernel") with { Ports = [new PortForward(8080, 80)] };
        var netdev = NetdevOf(QemuCommandBuilder.Build(spec, Accelerator.Tcg));
        Assert.Contains("hostfwd=tcp:127.0.0.1:40022-:22", netdev, StringComparison.Ordinal);
        Assert.Contains("hostfwd=tcp:127.0.0.1:8080-:80", netdev, StringComparison.Ordinal);
        Assert.DoesNotContain("hostfwd=tcp::", netdev, StringComparison.Ordinal);
    }

    [Fact]
    public void Commas_in_paths_are_doubled_in_option_values()
    {
        var spec = Spec(new LinuxKitImage { Format = ImageFormat.Iso, Path = "/images/a,b.iso" }) with
        {
            Files = new VmFiles("0123abcd", "/state,x"),
            Volumes = [new VolumeShare("vol0", "/data,1", "/data")],
        };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Tcg);
        Assert.Contains(args, a => a.Contains("file=/images/a,,b.iso,", StringComparison.Ordinal));
        Assert.Contains(args, a => a.Contains("file=/state,,x/metadata.iso,", StringComparison.Ordinal));
        Assert.Contains(args, a => a.Contains("path=/data,,1,", StringComparison.Ordinal));
    }

    [Fact]
    public void Console_goes_to_a_file_not_stdio_so_QEMU_can_daemonize()
    {
        var args = QemuCommandBuilder.Build(SpecFor("iso"), Accelerator.Tcg);
        Assert.DoesNotContain("-nographic", args);
        Assert.DoesNotContain(args, a => a.Contains("stdio", StringComparison.Ordinal));
        Assert.Contains("-daemonize", args);
    }

    [Theory]
    [InlineData(Accelerator.Kvm, "kvm")]
    [InlineData(Accelerator.Hvf, "hvf")]
    [InlineData(Accelerator.Tcg, "tcg,tb-size=256")]
    public void Accelerator_is_passed_to_QEMU(Accelerator accelerator, string expected)
    {
        var args = QemuCommandBuilder.Build(SpecFor("kernel"), accelerator).ToList();
        Assert.Equal(expected, args[args.IndexOf("-accel") + 1]);
    }

    [Fact]
    public void A_disk_image_without_an_overlay_is_refused()
    {
        var spec = Spec(new LinuxKitImage { Format = ImageFormat.Qcow2, Path = "/images/os.qcow2" });
        Assert.Throws<ArgumentException>(() => QemuCommandBuilder.Build(spec, Accelerator.Tcg));
    }

    private static string NetdevOf(IReadOnlyList<string> args) => args[args.ToList().IndexOf("-netdev") + 1];

    [Theory]
    [InlineData(false, "user,id=net0,hostfwd=")]
    [InlineData(true, "user,id=net0,restrict=on,hostfwd=")]
    public void A_restricted_network_is_user_networking_with_restrict_on_and_keeps_the_forwards(bool restrict, string netdev)
    {
        var args = QemuCommandBuilder.Build(SpecFor("kernel") with { RestrictNetwork = restrict }, Accelerator.Tcg).ToList();

        Assert.StartsWith(netdev, args[args.IndexOf("-netdev") + 1], StringComparison.Ordinal);
    }

    private static readonly UefiFirmware Ovmf = new("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "test");
    private static readonly UefiFirmware Aavmf = new("/opt/homebrew/share/qemu/edk2-aarch64-code.fd", "/opt/homebrew/share/qemu/edk2-arm-vars.fd", "test");

    [Fact]
    public void A_UEFI_boot_maps_the_code_read_only_and_the_VMs_own_variables()
    {
        var spec = SpecFor("qcow2") with { Boot = new FirmwareChoice(GuestArchitecture.X64, Uefi: true, Reason: null) };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Tcg, Ovmf);
        Snapshot.Match(args);
        Assert.Contains("if=pflash,format=raw,unit=0,file=/usr/share/OVMF/OVMF_CODE_4M.fd,readonly=on", args);
        Assert.Contains("if=pflash,format=raw,unit=1,file=/state/vms/0123abcd/efivars.fd", args);
        Assert.Throws<ArgumentException>(() => QemuCommandBuilder.Build(spec, Accelerator.Tcg));
    }

    [Fact]
    public void A_template_runs_in_its_vms_folder_with_its_own_metadata_and_UEFI_variables()
    {
        var spec = SpecFor("qcow2") with
        {
            Boot = new FirmwareChoice(GuestArchitecture.X64, Uefi: true, Reason: null),
            MetadataIso = "/state/templates/k.partial/metadata.iso",
            UefiVars = "/state/templates/k.partial/efivars.fd",
        };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Tcg, Ovmf);

        Assert.Contains("if=pflash,format=raw,unit=1,file=/state/templates/k.partial/efivars.fd", args);
        Assert.Contains(args, a => a.StartsWith("if=none,id=metadata,file=/state/templates/k.partial/metadata.iso,", StringComparison.Ordinal));
        // What identifies and controls the process is the VM's: it may run on as that VM.
        Assert.Contains("/state/vms/0123abcd/hypervisor.pid", args);
        Assert.Contains("unix:/state/vms/0123abcd/control.sock,server=on,wait=off", args);
        Assert.Contains("file,id=console,path=/state/vms/0123abcd/console.log,append=on", args);
    }

    [Fact]
    public void An_arm64_kernel_runs_on_the_virt_board_with_no_firmware_and_no_x86_devices()
    {
        var spec = SpecFor("kernel") with { Boot = new FirmwareChoice(GuestArchitecture.Arm64, Uefi: false, Reason: null) };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Tcg).ToList();
        Snapshot.Match(args);
        Assert.Equal("virt", args[args.IndexOf("-machine") + 1]);
        Assert.Equal("max,pauth-impdef=on", args[args.IndexOf("-cpu") + 1]);
        Assert.DoesNotContain(args, a => a.Contains("isa-debugcon", StringComparison.Ordinal) || a.Contains("pflash", StringComparison.Ordinal));
    }

    [Fact]
    public void On_Apple_Silicon_an_arm64_ISO_runs_under_hvf_with_the_host_CPU_UEFI_and_its_CD_on_virtio_scsi()
    {
        var spec = SpecFor("iso") with { Boot = new FirmwareChoice(GuestArchitecture.Arm64, Uefi: true, Reason: null) };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Hvf, Aavmf).ToList();
        Snapshot.Match(args);
        Assert.Equal("hvf", args[args.IndexOf("-accel") + 1]);
        Assert.Equal("host", args[args.IndexOf("-cpu") + 1]);
        Assert.Contains("scsi-cd,drive=boot,bus=scsi0.0,bootindex=0", args);
    }

    [Fact]
    public void An_arm64_template_keeps_its_ram_in_a_file_without_the_x86_generation_id_device()
    {
        var spec = SpecFor("kernel") with
        {
            Boot = new FirmwareChoice(GuestArchitecture.Arm64, Uefi: false, Reason: null),
            MemoryFile = new MemoryFile("/state/templates/k/memory.ram", Shared: true),
        };
        var args = QemuCommandBuilder.Build(spec, Accelerator.Kvm).ToList();
        Assert.Equal("virt,gic-version=host,memory-backend=ram", args[args.IndexOf("-machine") + 1]);
        Assert.DoesNotContain("vmgenid", args);
    }
}
