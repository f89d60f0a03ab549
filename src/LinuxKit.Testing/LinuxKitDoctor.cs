using System.Globalization;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.KubeVirt;
using LinuxKit.Testing.Hypervisors.Qemu;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing;

/// <summary>One finding of <see cref="LinuxKitDoctor.CheckAsync"/>.</summary>
/// <param name="Name">What was checked.</param>
/// <param name="Status">Whether VMs run, run worse than they could, or cannot run until it is fixed.</param>
/// <param name="Detail">What was found; when not <see cref="DoctorStatus.Ok"/>, what to do.</param>
public sealed record DoctorCheck(string Name, DoctorStatus Status, string Detail);

/// <summary>How a <see cref="DoctorCheck"/> came out.</summary>
public enum DoctorStatus
{
    /// <summary>Fine.</summary>
    Ok,

    /// <summary>VMs run, but worse than they could (software emulation instead of KVM).</summary>
    Warning,

    /// <summary>VMs cannot run until this is fixed.</summary>
    Failed,
}

/// <summary>
/// Checks that this host can run VMs the way <see cref="LinuxKitManager"/> would: QEMU and
/// qemu-img and their versions, which accelerator works (and why not KVM) — or, for KubeVirt,
/// the kubeconfig and whether the cluster answers with it and serves KubeVirt — the state
/// directory and its permissions, and a free port on 127.0.0.1.
/// </summary>
public static class LinuxKitDoctor
{
    /// <summary>Runs every check; none throws, each says what it found.</summary>
    /// <param name="options">The settings a manager would use (state directory, QEMU binary).</param>
    /// <param name="cancellationToken">Cancels the checks.</param>
    public static async Task<IReadOnlyList<DoctorCheck>> CheckAsync(LinuxKitManagerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LinuxKitManagerOptions();
        var checks = new List<DoctorCheck>();
        var root = options.ResolveStateDirectory();
        if (HypervisorFactory.Requested(options) == HypervisorKind.KubeVirt)
            await CheckKubeVirtAsync(options, root, checks, cancellationToken).ConfigureAwait(false);
        else
            await CheckQemuAsync(options, checks, cancellationToken).ConfigureAwait(false);
        CheckStateDirectory(root, checks);
        return checks;
    }

    // KubeVirt VMs need no local hypervisor: the cluster, and the bridge that reaches it.
    private static async Task CheckKubeVirtAsync(LinuxKitManagerOptions options, string root, List<DoctorCheck> checks, CancellationToken cancellationToken)
    {
        try
        {
            var kubeVirt = new KubeVirtHypervisor(options.KubeVirt, () => new StateStore(root).Scratch("kubevirt"), NullLogger.Instance);
            var (cluster, answer) = await kubeVirt.CheckClusterAsync(cancellationToken).ConfigureAwait(false);
            checks.Add(new DoctorCheck("KubeVirt", DoctorStatus.Ok, $"{cluster}: {answer}"));
        }
        catch (LinuxKitException e)
        {
            checks.Add(new DoctorCheck("KubeVirt", DoctorStatus.Failed, e.Message));
        }
    }

    private static async Task CheckQemuAsync(LinuxKitManagerOptions options, List<DoctorCheck> checks, CancellationToken cancellationToken)
    {
        QemuHypervisor? qemu = null;
        try
        {
            qemu = new QemuHypervisor(options.QemuPath, options.Accelerator, NullLogger.Instance);
            checks.Add(new DoctorCheck("QEMU", DoctorStatus.Ok, $"{qemu.Binary}: {await VersionAsync(qemu.Binary, cancellationToken).ConfigureAwait(false)}"));
            checks.Add(new DoctorCheck("qemu-img", DoctorStatus.Ok, $"{qemu.QemuImg}: {await VersionAsync(qemu.QemuImg, cancellationToken).ConfigureAwait(false)}"));
        }
        catch (LinuxKitException e)
        {
            checks.Add(new DoctorCheck("QEMU", DoctorStatus.Failed, e.Message));
        }
        if (qemu is not null)
        {
            // What the other outputs need: arm64 guests their own QEMU binary, UEFI images the
            // firmware. Warnings only: BIOS images of the host's architecture need neither.
            try
            {
                var aarch64 = qemu.BinaryFor(GuestArchitecture.Arm64);
                checks.Add(new DoctorCheck("QEMU arm64", DoctorStatus.Ok, $"{aarch64}: {await VersionAsync(aarch64, cancellationToken).ConfigureAwait(false)}"));
            }
            catch (LinuxKitException e)
            {
                checks.Add(new DoctorCheck("QEMU arm64", DoctorStatus.Warning, e.Message));
            }
            foreach (var architecture in new[] { GuestArchitecture.X64, GuestArchitecture.Arm64 })
            {
                var name = architecture == GuestArchitecture.Arm64 ? "UEFI arm64" : "UEFI x86_64";
                try
                {
                    var uefi = qemu.UefiFor(architecture);
                    checks.Add(new DoctorCheck(name, DoctorStatus.Ok, $"{uefi.Code} (variables {uefi.VarsTemplate}; from {uefi.Source})"));
                }
                catch (LinuxKitException e)
                {
                    checks.Add(new DoctorCheck(name, DoctorStatus.Warning, e.Message));
                }
            }
            // Only a speed-up: without it, kernels loaded directly boot under SeaBIOS.
            checks.Add(qemu.Qboot is { } qboot
                ? new DoctorCheck("qboot", DoctorStatus.Ok, $"{qboot} (cold x86_64 boots of a kernel loaded directly: kernel+initrd, ISOs and BIOS disks)")
                : new DoctorCheck("qboot", DoctorStatus.Ok, LinuxKitEnvironment.IsOn(LinuxKitEnvironment.Qboot)
                    ? "not installed beside QEMU: kernels loaded directly boot under SeaBIOS, about 0.1 s slower under TCG"
                    : $"turned off by {LinuxKitEnvironment.Qboot}: kernels loaded directly boot under SeaBIOS"));
            var (accelerator, whyNotKvm) = await AcceleratorProbe.DiagnoseAsync(qemu.Binary).WaitAsync(cancellationToken).ConfigureAwait(false);
            checks.Add(whyNotKvm is null
                ? new DoctorCheck("Accelerator", DoctorStatus.Ok, accelerator.ToString().ToLowerInvariant())
                : new DoctorCheck("Accelerator", DoctorStatus.Warning, $"VMs run under tcg (software emulation, several times slower): {whyNotKvm}. For KVM the user needs read-write access to /dev/kvm (the kvm group) on a host with virtualisation enabled."));
        }
    }

    private static void CheckStateDirectory(string root, List<DoctorCheck> checks)
    {
        try
        {
            var store = new StateStore(root);
            var mode = OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(store.Root);
            var vms = store.LoadAll();
            checks.Add(new DoctorCheck("State directory", DoctorStatus.Ok, string.Create(CultureInfo.InvariantCulture,
                $"{store.Root} (mode {Convert.ToString((int)mode, 8)}, owner uid {PrivateFiles.OwnerOf(store.Root)}): {vms.Count} VM folders, {vms.Count(v => v.Status == ContainerStatus.Running)} recorded running")));
            using var port = new PortAllocator(store.Scratch("ports")).ReserveFree();
            checks.Add(new DoctorCheck("Ports", DoctorStatus.Ok, string.Create(CultureInfo.InvariantCulture, $"free ports on 127.0.0.1 can be reserved (e.g. {port.Port})")));
        }
        catch (LinuxKitException e)
        {
            checks.Add(new DoctorCheck("State directory", DoctorStatus.Failed, e.Message));
        }
    }

    private static async Task<string> VersionAsync(string binary, CancellationToken cancellationToken)
    {
        var outcome = await ProcessRunner.RunAsync(binary, ["--version"], TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
        return outcome.Stdout.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? $"exit code {outcome.ExitCode}";
    }
}
