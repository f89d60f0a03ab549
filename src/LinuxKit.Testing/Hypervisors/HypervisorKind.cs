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

    /// <summary>
    /// A Kubernetes cluster with KubeVirt: each VM is a <c>VirtualMachineInstance</c>, reached
    /// through a local loopback port (see <see cref="KubeVirtOptions"/>). Images are disks the
    /// cluster reaches: <c>containerdisk:REFERENCE</c>, <c>pvc:NAME</c> or <c>datavolume:NAME</c>.
    /// </summary>
    KubeVirt,
}
