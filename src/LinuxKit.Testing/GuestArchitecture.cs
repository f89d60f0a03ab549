namespace LinuxKit.Testing;

/// <summary>The processor architecture a guest's image is built for.</summary>
public enum GuestArchitecture
{
    /// <summary>Detect from the image: the kernel's header, the EFI loader on an ISO or disk.</summary>
    Auto,

    /// <summary>x86_64 (amd64): <c>qemu-system-x86_64</c>, the q35 machine.</summary>
    X64,

    /// <summary>arm64 (aarch64): <c>qemu-system-aarch64</c>, the virt machine.</summary>
    Arm64,
}
