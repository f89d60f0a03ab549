using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Hypervisors.Hyperkit;

/// <summary>Where a Hyperkit VM's sockets live and how it is networked.</summary>
/// <param name="Files">The VM's folder and files in the state directory.</param>
/// <param name="Networking">VPNKit or vmnet.</param>
/// <param name="Firmware">EFI firmware for ISO and disk boots; null for kernel+initrd.</param>
internal sealed record HyperkitLayout(VmFiles Files, HyperkitNetworking Networking, string? Firmware)
{
    /// <summary>The guest address VPNKit hands out (fixed: each VM has a VPNKit of its own).</summary>
    public const string GuestAddress = "192.168.65.2";

    /// <summary>The vsock port on which LinuxKit's vpnkit-forwarder in the guest takes published traffic.</summary>
    public const int ForwarderVsockPort = 62373;
}
