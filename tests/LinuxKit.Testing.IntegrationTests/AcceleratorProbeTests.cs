using System.Diagnostics;
using LinuxKit.Testing.Hypervisors.Qemu;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>The KVM probe's guest, run where it can always run (TCG): a probe whose guest never reports would take every host for one without KVM.</summary>
[Trait("Category", "Integration")]
public class AcceleratorProbeTests
{
    [Fact]
    public async Task The_probe_guest_reaches_protected_mode_and_writes_its_marker_under_tcg()
    {
        using var folder = new TempDirectory("lkt-probe-");
        var payload = Path.Combine(folder.Path, "probe.bin");
        var debugLog = Path.Combine(folder.Path, "debug.log");
        await File.WriteAllBytesAsync(payload, AcceleratorProbe.MultibootPayload("probe-start", "probe-marker"));
        var info = new ProcessStartInfo("timeout") { RedirectStandardError = true };
        foreach (var arg in new[]
                 {
                     "-s", "KILL", "20", "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg", "-m", "16",
                     "-display", "none", "-kernel", payload, "-chardev", $"file,id=debug,path={debugLog}", "-device", "isa-debugcon,iobase=0x402,chardev=debug",
                 })
        {
            info.ArgumentList.Add(arg);
        }
        using var qemu = Process.Start(info)!;
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            while (!(File.Exists(debugLog) && File.ReadAllText(debugLog).Contains("\nprobe-marker\n", StringComparison.Ordinal)) && DateTime.UtcNow < deadline)
                await Task.Delay(50);
            Assert.Contains("\nprobe-marker\n", File.Exists(debugLog) ? File.ReadAllText(debugLog) : "", StringComparison.Ordinal);
        }
        finally
        {
            qemu.Kill(entireProcessTree: true);
        }
    }
}
