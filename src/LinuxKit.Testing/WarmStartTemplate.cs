namespace LinuxKit.Testing;

/// <summary>
/// A warm-start template: a VM saved right after its first boot, which later VMs of the same
/// image and options are restored from (see <see cref="RunOptions.WarmStart"/>).
/// </summary>
public sealed record WarmStartTemplate
{
    /// <summary>The template's key: a hash of the image's files, the options and the hypervisor it depends on.</summary>
    public required string Key { get; init; }

    /// <summary>The image, as the VM that made the template named it.</summary>
    public required string Image { get; init; }

    /// <summary>Memory in MB.</summary>
    public int Memory { get; init; }

    /// <summary>Virtual CPUs.</summary>
    public int Cpus { get; init; }

    /// <summary>When the template was made.</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When a VM was last restored from it (templates unused for 14 days are removed).</summary>
    public DateTimeOffset LastUsedAt { get; init; }

    /// <summary>The bytes its files take on disk (the memory file holds data only where the guest wrote).</summary>
    public long SizeOnDisk { get; init; }

    /// <summary>
    /// Null for a template VMs are restored from. Otherwise why warm start failed for this key in
    /// a step only warm start has (the guest refused its first clone, or the template could not
    /// be saved): there are no files, VMs of this image and options boot cold at once, and
    /// removing the entry (<see cref="IManager.RemoveTemplateAsync(string, CancellationToken)"/>) makes the next VM try again.
    /// <see cref="CreatedAt"/> is when it failed.
    /// </summary>
    public string? FailureReason { get; init; }

    /// <summary>
    /// Where it was made when that is another machine or PID namespace (a state directory on a
    /// shared home), in words; null when it was made here. Prune leaves such a template alone
    /// (its image is a file on that machine), and removing it takes force.
    /// </summary>
    public string? ForeignHost { get; init; }
}
