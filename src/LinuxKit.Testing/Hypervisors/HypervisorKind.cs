namespace LinuxKit.Testing.Hypervisors;

/// <summary>Which hypervisor runs the VMs.</summary>
public enum HypervisorKind
{
    /// <summary>The best one this machine has (today: QEMU).</summary>
    Auto,

    /// <summary>QEMU (qemu-system-x86_64).</summary>
    Qemu,
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
