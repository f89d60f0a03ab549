namespace LinuxKit.Testing.Images;

/// <summary>The LinuxKit output formats the SDK boots.</summary>
public enum ImageFormat
{
    /// <summary>Not a format the SDK recognises.</summary>
    Unknown,

    /// <summary>An ISO9660 image (LinuxKit's iso-bios), booted as a read-only CD-ROM.</summary>
    Iso,

    /// <summary>A QEMU copy-on-write disk (qcow2-bios).</summary>
    Qcow2,

    /// <summary>A VMware disk (vmdk).</summary>
    Vmdk,

    /// <summary>A raw disk with an MBR or GPT (raw-bios).</summary>
    Raw,

    /// <summary>LinuxKit's kernel+initrd output: NAME-kernel, NAME-initrd.img, NAME-cmdline.</summary>
    KernelInitrd,

    /// <summary>
    /// A disk on a Kubernetes cluster, booted by KubeVirt: <c>containerdisk:REFERENCE</c> (an OCI
    /// image holding the disk under /disk), <c>pvc:NAME</c> or <c>datavolume:NAME</c>.
    /// </summary>
    ClusterDisk,
}
