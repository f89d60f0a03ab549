namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// Names the image (and options) that test fixtures boot, for a whole test assembly:
/// <c>[assembly: LinuxKitImage("os.qcow2", Memory = 512)]</c>. A relative path is resolved from
/// the test assembly's folder first, then from the current directory.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class, AllowMultiple = false)]
public sealed class LinuxKitImageAttribute(string image) : Attribute
{
    /// <summary>The image file or kernel+initrd prefix.</summary>
    public string Image { get; } = image;

    /// <summary>Memory in MB (default 1024).</summary>
    public int Memory { get; set; } = 1024;

    /// <summary>Virtual CPUs (default 1).</summary>
    public int Cpus { get; set; } = 1;

    /// <summary>Boot timeout in seconds (default 120).</summary>
    public int BootTimeoutSeconds { get; set; } = 120;

    /// <summary>
    /// True to stop the VM with an ACPI power-off request and wait for the guest
    /// (<see cref="StopMode.Graceful"/>); by default it is ended at once (<see cref="StopMode.Fast"/>).
    /// </summary>
    public bool GracefulStop { get; set; }

    /// <summary>Guest ports to forward to free host ports (see <see cref="SharedVm.Ports"/>).</summary>
    public int[] GuestPorts { get; set; } = [];
}
