namespace LinuxKit.Testing.Hypervisors;

/// <summary>Which hypervisor runs the VMs.</summary>
public enum HypervisorKind
{
    /// <summary>
    /// Hyperkit on an Intel Mac that has it on PATH; QEMU everywhere else (on Apple Silicon with
    /// hvf, since hyperkit does not run there).
    /// </summary>
    Auto,

    /// <summary>QEMU (qemu-system-x86_64).</summary>
    Qemu,

    /// <summary>Hyperkit (macOS on Intel), as <c>linuxkit run hyperkit</c> runs it.</summary>
    Hyperkit,
}

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

/// <summary>How QEMU executes guest code.</summary>
public enum Accelerator
{
    /// <summary>Detect: KVM where it works, HVF on macOS, else TCG.</summary>
    Auto,

    /// <summary>Linux KVM.</summary>
    Kvm,

    /// <summary>macOS Hypervisor.framework.</summary>
    Hvf,

    /// <summary>QEMU's software emulation: works everywhere, several times slower.</summary>
    Tcg,
}
