using LinuxKit.Testing.Processes;

namespace LinuxKit.Testing.Images;

/// <summary>
/// Disk images boot through a qcow2 overlay in the VM's own folder: the user's image is only
/// ever read, and any number of VMs can boot one image at once.
/// </summary>
internal static class DiskOverlay
{
    public static Task CreateAsync(string qemuImg, LinuxKitImage image, string overlayPath, CancellationToken cancellationToken)
    {
        var backingFormat = image.Format switch
        {
            ImageFormat.Qcow2 => "qcow2",
            ImageFormat.Vmdk => "vmdk",
            ImageFormat.Raw => "raw",
            _ => throw new ArgumentException($"{image.Format} images boot without an overlay.", nameof(image)),
        };
        return CreateAsync(qemuImg, image.Path, backingFormat, overlayPath, cancellationToken);
    }

    /// <summary>An overlay over <paramref name="backing"/> (a warm-start clone's is over its template's disk).</summary>
    public static async Task CreateAsync(string qemuImg, string backing, string backingFormat, string overlayPath, CancellationToken cancellationToken)
    {
        var outcome = await ProcessRunner.RunAsync(
            qemuImg,
            ["create", "-q", "-f", "qcow2", "-F", backingFormat, "-b", backing, overlayPath],
            TimeSpan.FromSeconds(60),
            cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode != 0)
        {
            throw new LinuxKitException(
                $"Image '{backing}' cannot be used as a {backingFormat} disk (it may be corrupt or truncated): " +
                $"qemu-img says: {outcome.Stderr.Trim()}");
        }
    }
}
