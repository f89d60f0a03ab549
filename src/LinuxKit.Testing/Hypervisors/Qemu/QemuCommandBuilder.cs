using System.Globalization;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Networking;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>
/// Builds the QEMU arguments for a VM: qemu-system-x86_64 with the q35 machine, or
/// qemu-system-aarch64 with the virt machine, under BIOS, UEFI or (arm64 kernels) no firmware.
/// Pure: no files, no processes, so every format and option is covered by snapshot tests.
/// </summary>
internal static class QemuCommandBuilder
{
    /// <param name="spec">The VM.</param>
    /// <param name="accelerator">The accelerator, resolved for the guest's architecture.</param>
    /// <param name="uefi">The firmware files when <see cref="FirmwareChoice.Uefi"/>; the VM's variables are its own copy (<see cref="VmSpec.UefiVars"/>).</param>
    /// <param name="qboot">QEMU's minimal BIOS (qboot.rom), when installed and wanted: x86_64 kernels QEMU loads itself (kernel+initrd images, ISOs and disks booted directly) under BIOS use it instead of SeaBIOS.</param>
    public static IReadOnlyList<string> Build(VmSpec spec, Accelerator accelerator, UefiFirmware? uefi = null, string? qboot = null)
    {
        if (accelerator == Accelerator.Auto) throw new ArgumentException("Resolve the accelerator before building the command.", nameof(accelerator));
        if (spec.Boot.Uefi && uefi is null) throw new ArgumentException("A UEFI boot needs the firmware's files.", nameof(uefi));
        if (!spec.Boot.Uefi) uefi = null;
        var arm64 = spec.Boot.Architecture == GuestArchitecture.Arm64;
        // virt: the arm64 board QEMU and LinuxKit use. Under KVM its interrupt controller is the
        // host's (GICv3-only hosts such as Graviton have no GICv2 to emulate).
        var machine = arm64 ? (accelerator == Accelerator.Kvm ? "virt,gic-version=host" : "virt") : "q35";
        var args = new List<string>
        {
            "-name", "linuxkit-" + spec.Id,
            // No default devices (VGA, NIC, floppy, CD-ROM): fewer devices to emulate, faster boot.
            "-nodefaults", "-no-user-config",
        };
        if (spec.MemoryFile is { } memory)
        {
            // Warm start: RAM is a file, so a template's memory outlives its QEMU and clones map
            // it instead of loading it (migration skips it: x-ignore-shared). vmgenid gives each
            // clone a new generation id, which kernels built with CONFIG_VMGENID take as the cue
            // to reseed their random generator (an ACPI device: x86 only).
            args.AddRange([
                "-machine", machine + ",memory-backend=ram",
                "-object", string.Create(CultureInfo.InvariantCulture, $"memory-backend-file,id=ram,size={spec.MemoryMb}M,mem-path={Escape(memory.Path)},share={(memory.Shared ? "on" : "off")}"),
            ]);
            if (!arm64) args.AddRange(["-device", "vmgenid"]);
        }
        else
        {
            args.AddRange(["-machine", machine]);
        }
        args.AddRange(accelerator switch
        {
            Accelerator.Kvm => ["-accel", "kvm"],
            Accelerator.Hvf => ["-accel", "hvf"],
            _ => ["-accel", "tcg,tb-size=256"],
        });
        args.AddRange([
            // arm64 under TCG: pauth-impdef makes pointer authentication, which the kernel uses
            // on every function return, cheap to emulate.
            "-cpu", !arm64 ? "max" : accelerator == Accelerator.Tcg ? "max,pauth-impdef=on" : "host",
            "-smp", Invariant(spec.Cpus),
            "-m", Invariant(spec.MemoryMb),
            "-display", "none",
            // Not -nographic with -serial stdio: QEMU refuses two stdio character devices.
            // append=on: QEMU opens the log with O_APPEND, so the SDK can cut it short
            // (ConsoleRotation) while QEMU writes.
            "-chardev", $"file,id=console,path={Escape(spec.Files.ConsoleLog)},append=on",
            "-serial", "chardev:console",
        ]);
        if (!arm64)
        {
            // The firmware's own log (SeaBIOS writes it to port 0x402, never to the serial
            // console): how a boot that found nothing to boot is told at once. OVMF and the
            // arm64 firmware say so on the serial console.
            args.AddRange([
                "-chardev", $"file,id=firmware,path={Escape(spec.Files.FirmwareLog)}",
                "-device", "isa-debugcon,iobase=0x402,chardev=firmware",
            ]);
        }
        // A kernel QEMU loads itself needs of a BIOS only the tables and the jump to the kernel:
        // qboot does that and nothing else (no boot menu, no device scan, no option ROMs), about
        // 0.1 s sooner than SeaBIOS under TCG. Not with a memory file: its vmgenid device needs
        // the firmware to write the id's address back to QEMU, which qboot cannot (the guest
        // hangs before its first console line), and a clone must run its template's firmware.
        var kernel = spec.Image.Format == ImageFormat.KernelInitrd
            ? new KernelFiles(spec.Image.Path, spec.Image.Initrd, spec.Image.CommandLine ?? "")
            : spec.Kernel;
        if (!arm64 && uefi is null && qboot is not null && kernel is not null && spec.MemoryFile is null)
            args.AddRange(["-bios", qboot]);
        if (uefi is not null)
        {
            args.AddRange([
                "-drive", $"if=pflash,format=raw,unit=0,file={Escape(uefi.Code)},readonly=on",
                "-drive", $"if=pflash,format=raw,unit=1,file={Escape(spec.UefiVars)}",
            ]);
        }
        args.AddRange([
            "-qmp", $"unix:{Escape(spec.Files.ControlSocket)},server=on,wait=off",
            // -daemonize: QEMU returns once it is set up (ports bound, files open) or failed, and
            // runs in its own session, so Ctrl-C in the caller does not reach it. -D keeps its
            // later error messages instead of sending them to /dev/null.
            "-daemonize", "-pidfile", spec.Files.PidFile, "-D", spec.Files.HypervisorLog,
        ]);

        var forwards = new List<string> { HostForward(spec.SshPort, 22) };
        forwards.AddRange(spec.Ports.Select(p => HostForward(p.HostPort, p.GuestPort)));
        // restrict=on: the guest reaches nothing outside (the host's loopback services
        // included); the forwarded ports still reach the guest.
        var restrict = spec.RestrictNetwork ? "restrict=on," : "";
        // Without the NIC's option ROM (iPXE): nothing here boots from the network, the firmware
        // starts sooner without loading it, and a boot that finds no disk to boot reaches the
        // firmware's "nothing to boot" at once, not after a network boot's timeouts.
        args.AddRange(["-netdev", "user,id=net0," + restrict + string.Join(',', forwards), "-device", "virtio-net-pci,netdev=net0,romfile="]);

        // The metadata CD-ROM sits on virtio-scsi: Debian's cloud kernel has no AHCI driver.
        args.AddRange([
            "-device", "virtio-scsi-pci,id=scsi0",
            "-drive", $"if=none,id=metadata,file={Escape(spec.MetadataIso)},format=raw,media=cdrom,readonly=on",
            "-device", "scsi-cd,drive=metadata,bus=scsi0.0",
        ]);

        if (kernel is not null)
        {
            args.AddRange(["-kernel", kernel.Kernel]);
            if (kernel.Initrd is not null) args.AddRange(["-initrd", kernel.Initrd]);
            args.AddRange(["-append", kernel.CommandLine]);
        }
        // A kernel QEMU loads boots first; the image's own disk is still attached as it was, with
        // no boot index.
        var bootIndex = kernel is null ? ",bootindex=0" : "";
        switch (spec.Image.Format)
        {
            case ImageFormat.KernelInitrd:
                break;
            case ImageFormat.Iso:
                // Read-only: an ISO needs no overlay, and many VMs can share it. The virt board
                // has no IDE: there the CD sits on virtio-scsi beside the metadata one.
                args.AddRange([
                    "-drive", $"if=none,id=boot,file={Escape(spec.Image.Path)},format=raw,media=cdrom,readonly=on",
                    "-device", (arm64 ? "scsi-cd,drive=boot,bus=scsi0.0" : "ide-cd,drive=boot,bus=ide.0") + bootIndex,
                ]);
                break;
            case ImageFormat.Qcow2 or ImageFormat.Vmdk or ImageFormat.Raw:
                var disk = spec.BootDisk ?? throw new ArgumentException($"A {spec.Image.Format} image boots from an overlay; BootDisk is not set.", nameof(spec));
                args.AddRange([
                    "-drive", $"if=none,id=boot,file={Escape(disk)},format=qcow2",
                    "-device", "virtio-blk-pci,drive=boot" + bootIndex,
                ]);
                break;
            default:
                throw new ArgumentException($"QEMU cannot boot a {spec.Image.Format} image.", nameof(spec));
        }

        // The saved state is loaded through the control socket (migrate-incoming) once the
        // caller has set the migration's capabilities.
        if (spec.Incoming) args.AddRange(["-incoming", "defer"]);

        for (var i = 0; i < spec.Volumes.Count; i++)
        {
            var volume = spec.Volumes[i];
            args.AddRange([
                "-fsdev", $"local,id=fsdev{i},path={Escape(volume.HostPath)},security_model=none",
                "-device", $"virtio-9p-pci,fsdev=fsdev{i},mount_tag={volume.Tag}",
            ]);
        }
        return args;
    }

    /// <summary>Loopback only: a forwarded port must not be reachable from the network.</summary>
    private static string HostForward(int hostPort, int guestPort) =>
        string.Create(CultureInfo.InvariantCulture, $"hostfwd=tcp:{Loopback.Address}:{hostPort}-:{guestPort}");

    /// <summary>QEMU's option syntax splits on commas; a literal comma is written twice.</summary>
    internal static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
