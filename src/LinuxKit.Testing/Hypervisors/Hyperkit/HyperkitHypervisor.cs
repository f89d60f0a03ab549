using LinuxKit.Testing.Images;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors.Hyperkit;

/// <summary>
/// Runs VMs with hyperkit (macOS on Intel) the way <c>linuxkit run hyperkit</c> does: kernel+initrd
/// through kexec, ISO and disk images through EFI firmware, raw disks only (qcow2 and VMDK are
/// converted to a raw copy first), a VPNKit per VM with ports published by vpnkit-expose-port.
/// hyperkit turns SIGTERM into an ACPI power button press; it cannot pause a VM.
/// </summary>
internal sealed class HyperkitHypervisor : IHypervisor
{
    private const string InstallHint = "Install it on an Intel Mac with 'brew install hyperkit' (Docker Desktop ships one too), or set LinuxKitManagerOptions.Hypervisor to Qemu.";

    private readonly HyperkitOptions _options;
    private readonly ILogger _logger;

    public HyperkitHypervisor(HyperkitOptions options, ILogger logger)
    {
        _options = options;
        _logger = logger;
        Binary = Locate(options) ?? throw new LinuxKitException($"hyperkit binary '{Requested(options)}' was not found. {InstallHint}");
    }

    /// <summary>The hyperkit binary the options name (else LINUXKIT_TESTING_HYPERKIT, else PATH); null when there is none.</summary>
    public static string? Locate(HyperkitOptions options) => ProcessRunner.FindOnPath(Requested(options));

    private static string Requested(HyperkitOptions options) =>
        options.Binary ?? LinuxKitEnvironment.Read(LinuxKitEnvironment.Hyperkit) ?? "hyperkit";

    public HypervisorKind Kind => HypervisorKind.Hyperkit;

    public string Binary { get; }

    public void Validate(LinuxKitImage image, RunOptions options)
    {
        image.RequireLocal(Kind);
        if (FirmwareChoice.Decide(image, options.Firmware, options.Architecture).Architecture == GuestArchitecture.Arm64)
            throw new LinuxKitException($"Hyperkit runs x86_64 guests only, and '{image.Path}' is an arm64 image. Use QEMU (LinuxKitManagerOptions.Hypervisor = Qemu; on Apple Silicon it runs arm64 guests with hvf).");
        if (image.Format != ImageFormat.KernelInitrd && options.Firmware == Firmware.Bios)
            throw new LinuxKitException($"Hyperkit has no BIOS: it boots {image.Format} images through EFI firmware only. Leave RunOptions.Firmware Auto (or Uefi), or use QEMU for BIOS images.");
        if (options.Volumes.Count > 0)
            throw new LinuxKitException("Hyperkit cannot share host folders (its virtio-9p serves sockets, not folders). Use QEMU for volumes (LinuxKitManagerOptions.Hypervisor = Qemu), or copy files in with WriteFileAsync.");
        if (options.DirectKernelBoot == true && image.Format != ImageFormat.KernelInitrd)
            throw new LinuxKitException($"RunOptions.DirectKernelBoot is not available with Hyperkit, which boots {image.Format} images through its EFI firmware. Use QEMU (LinuxKitManagerOptions.Hypervisor = Qemu), or LinuxKit's kernel+initrd output, which Hyperkit loads directly.");
        if (options.RestrictNetwork)
            throw new LinuxKitException("RunOptions.RestrictNetwork is not available with Hyperkit (VPNKit has no such mode). Use QEMU (LinuxKitManagerOptions.Hypervisor = Qemu), or leave the guest's network open.");
        if (_options.Networking == HyperkitNetworking.VmNet)
            throw new LinuxKitException("Hyperkit with vmnet publishes no ports, and this SDK reaches a guest through its published SSH port on 127.0.0.1 (finding the guest's vmnet address is not implemented). Use HyperkitNetworking.VpnKit.");
        RequireFirmware(image);
        if (image.Format is ImageFormat.Qcow2 or ImageFormat.Vmdk) QemuImg(image);
    }

    public async Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken)
    {
        if (image.Format is ImageFormat.KernelInitrd or ImageFormat.Iso) return null;

        // hyperkit writes to its disk and reads raw only: the VM gets a raw copy of its own.
        var disk = files.RawDisk;
        if (image.Format == ImageFormat.Raw)
        {
            var source = File.OpenRead(image.Path);
            await using var sourceDisposal = source.ConfigureAwait(false);
            var copy = PrivateFiles.Create(disk);
            await using var copyDisposal = copy.ConfigureAwait(false);
            await source.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
            return disk;
        }
        var outcome = await ProcessRunner.RunAsync(QemuImg(image), ["convert", "-O", "raw", image.Path, disk], TimeSpan.FromMinutes(10), cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode != 0)
            throw new LinuxKitException($"qemu-img could not convert '{image.Path}' to a raw disk for hyperkit: {outcome.Stderr.Trim()}");
        return disk;
    }

    public async Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken)
    {
        var layout = new HyperkitLayout(spec.Files, _options.Networking, _options.Firmware);
        var vpnKit = Tool(_options.VpnKit, "vpnkit");
        var exposePort = Tool(_options.VpnKitExposePort, "vpnkit-expose-port");
        var helpers = new List<ProcessIdentity>();
        ProcessIdentity? hyperkit = null;
        try
        {
            helpers.Add(await DetachedProcess.StartAsync(vpnKit, HyperkitCommandBuilder.VpnKit(layout), spec.Files.HypervisorLog, spec.Files.HypervisorLog, cancellationToken).ConfigureAwait(false));
            await WaitForAsync(() => File.Exists(layout.Files.VpnKitEthernetSocket), helpers[0], "vpnkit to open its ethernet socket", spec, cancellationToken).ConfigureAwait(false);

            var args = HyperkitCommandBuilder.Build(spec, layout);
            _logger.LogDebug("Starting VM {Id}: {Binary} {Arguments}", spec.Id, Binary, string.Join(' ', args));
            hyperkit = await DetachedProcess.StartAsync(Binary, args, spec.Files.ConsoleLog, spec.Files.HypervisorLog, cancellationToken).ConfigureAwait(false);
            var started = hyperkit.Value;
            await WaitForAsync(() => File.Exists(spec.Files.PidFile), started, "hyperkit to write its pid file", spec, cancellationToken).ConfigureAwait(false);

            foreach (var forward in spec.Ports.Prepend(new PortForward(spec.SshPort, 22)))
            {
                helpers.Add(await DetachedProcess.StartAsync(exposePort, HyperkitCommandBuilder.ExposePort(layout, forward), spec.Files.HypervisorLog, spec.Files.HypervisorLog, cancellationToken).ConfigureAwait(false));
            }
            // A port that cannot be published (in use) makes vpnkit-expose-port exit at once.
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            if (helpers.Skip(1).Any(h => !h.IsAlive()))
                throw new LinuxKitException($"A port of VM {spec.Id} could not be published (in use?): {ConsoleLog.Tail(spec.Files.HypervisorLog, 10)}");

            // The helpers end with the VM, however it ends: a small shell waits for hyperkit.
            await DetachedProcess.StartAsync("/bin/sh", [
                "-c", "vm=$1; shift; trap '' INT HUP TERM; while kill -0 \"$vm\" 2>/dev/null; do sleep 1; done; kill \"$@\" 2>/dev/null",
                "linuxkit-testing-helpers", .. new[] { started.Pid }.Concat(helpers.Select(h => h.Pid)).Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ], "/dev/null", "/dev/null", CancellationToken.None).ConfigureAwait(false);
            return started;
        }
        catch
        {
            if (hyperkit is { } h) h.Signal(UnixSignal.Kill);
            foreach (var helper in helpers) helper.Signal(UnixSignal.Kill);
            throw;
        }
    }

    // hyperkit turns SIGTERM into an ACPI power button press; SIGKILL ends it at once (its disk
    // is a copy in the VM's folder, and the VPNKit helpers end with it).
    public Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken) =>
        mode == StopMode.Fast
            ? StopEscalation.RunAsync(_ => Task.FromResult(process.Signal(UnixSignal.Kill)), 128 + (int)UnixSignal.Kill, TimeSpan.FromSeconds(2), process, _logger, cancellationToken)
            : StopEscalation.RunAsync(_ => Task.FromResult(process.Signal(UnixSignal.Term)), 0, gracePeriod, process, _logger, cancellationToken);

    public Task PauseAsync(string controlSocket, CancellationToken cancellationToken) =>
        throw new NotSupportedException("Hyperkit cannot pause a VM (it has no such control); use QEMU (LinuxKitManagerOptions.Hypervisor = Qemu) to pause VMs.");

    public Task ResumeAsync(string controlSocket, CancellationToken cancellationToken) =>
        throw new NotSupportedException("Hyperkit cannot pause or resume a VM; use QEMU (LinuxKitManagerOptions.Hypervisor = Qemu).");

    // hyperkit reads raw disks only: qcow2 and VMDK are converted with qemu-img for each VM.
    private string QemuImg(LinuxKitImage image) =>
        ProcessRunner.FindOnPath(_options.QemuImg ?? "qemu-img") ?? throw new LinuxKitException(
            $"Hyperkit reads raw disks only, and '{image.Path}' is {image.Format}. Install qemu-img ('brew install qemu') so it is converted for each VM, " +
            $"or convert it once yourself: qemu-img convert -O raw '{image.Path}' image.img, and boot image.img.");

    private void RequireFirmware(LinuxKitImage image)
    {
        if (image.Format == ImageFormat.KernelInitrd) return;
        if (_options.Firmware is null)
            throw new LinuxKitException(
                $"Hyperkit boots {image.Format} images only through EFI firmware (LinuxKit's iso-efi, raw-efi or qcow2-efi outputs): set HyperkitOptions.Firmware to a UEFI.fd, " +
                "or boot LinuxKit's kernel+initrd output, which needs none.");
        if (!File.Exists(_options.Firmware))
            throw new LinuxKitException($"HyperkitOptions.Firmware '{_options.Firmware}' does not exist.");
    }

    private static string Tool(string? configured, string name) =>
        ProcessRunner.FindOnPath(configured ?? name) ?? throw new LinuxKitException(
            $"'{configured ?? name}' was not found; hyperkit VMs need it for networking and published ports. It comes with vpnkit ('brew install vpnkit', or Docker Desktop), or set it in HyperkitOptions.");

    private static async Task WaitForAsync(Func<bool> ready, ProcessIdentity process, string what, VmSpec spec, CancellationToken cancellationToken)
    {
        var settled = await Polling.UntilAsync(() => ready() || !process.IsAlive(), TimeSpan.FromMilliseconds(50), TimeLimits.HyperkitStartup, cancellationToken).ConfigureAwait(false);
        if (ready()) return;
        if (settled)
            throw new LinuxKitException($"VM {spec.Id}: waiting for {what}, the process exited: {ConsoleLog.Tail(spec.Files.HypervisorLog, 20)}");
        throw new LinuxKitException($"VM {spec.Id}: waited {TimeLimits.HyperkitStartup.TotalSeconds:0} s for {what}: {ConsoleLog.Tail(spec.Files.HypervisorLog, 20)}");
    }
}
