namespace LinuxKit.Testing.Hypervisors;

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
