namespace LinuxKit.Testing.Hypervisors;

/// <summary>How a Hyperkit VM is networked.</summary>
public enum HyperkitNetworking
{
    /// <summary>
    /// A VPNKit instance per VM (user-mode networking, like Docker Desktop); ports are published
    /// on 127.0.0.1 with vpnkit-expose-port. The image needs LinuxKit's vpnkit-forwarder service.
    /// </summary>
    VpnKit,

    /// <summary>
    /// Apple's vmnet (needs root): the guest gets an address on a host-only network and no
    /// ports are published. The SDK reaches guests through a published SSH port, so it cannot
    /// run VMs this way; the option exists to build the command line.
    /// </summary>
    VmNet,
}
