using System.Runtime.InteropServices;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>
/// Which accelerator a guest of one architecture can have on this host. KVM and HVF run only
/// guests of the host's own architecture; any other guest is emulated by TCG. Pure, so every
/// host and guest pairing is unit-tested.
/// </summary>
internal static class GuestAcceleration
{
    /// <summary>Whether <paramref name="host"/> runs <paramref name="guest"/> natively.</summary>
    public static bool IsNative(GuestArchitecture guest, Architecture host) =>
        (guest, host) is (GuestArchitecture.X64, Architecture.X64) or (GuestArchitecture.Arm64, Architecture.Arm64);

    /// <summary>
    /// The accelerator decided without probing the host: the one requested, or TCG for a guest
    /// of another architecture (with a message saying so); null when the host is to be probed
    /// for a guest of its own architecture.
    /// </summary>
    /// <exception cref="LinuxKitException">KVM or HVF was requested for a guest the host cannot run natively.</exception>
    public static (Accelerator? Accelerator, string? Message) Decide(Accelerator requested, GuestArchitecture guest, Architecture host)
    {
        var native = IsNative(guest, host);
        if (requested is Accelerator.Kvm or Accelerator.Hvf && !native)
            throw new LinuxKitException(
                $"The accelerator is {requested}, which runs guests of the host's architecture ({Name(host)}) only, and this guest is {Name(guest)}. " +
                "Use Accelerator.Auto or Tcg (emulation: slow, but it works), or a host of the guest's architecture.");
        if (requested != Accelerator.Auto) return (requested, null);
        if (native) return (null, null);
        return (Accelerator.Tcg, $"{Name(guest)} guests run under TCG emulation on this {Name(host)} host: several times slower than native, but they work.");
    }

    private static string Name(GuestArchitecture guest) => guest == GuestArchitecture.Arm64 ? "arm64" : "x86_64";

    private static string Name(Architecture host) => host switch
    {
        Architecture.X64 => "x86_64",
        Architecture.Arm64 => "arm64",
        _ => host.ToString().ToLowerInvariant(),
    };
}
