using System.Text.Json.Serialization;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// A VM saved right after its first boot answered over SSH, which later VMs of the same image
/// and options restore instead of booting: its RAM (a file clones map copy-on-write), its device
/// state, its disk, its console up to that moment and the key it accepts. Written once, never
/// changed; clones only read it.
/// </summary>
internal sealed record Template
{
    /// <summary>What the template was made from, hashed (see <see cref="TemplateKey"/>); also its folder's name.</summary>
    public required string Key { get; init; }

    /// <summary>The image as the caller named it, for listings.</summary>
    public required string Image { get; init; }
    public required int Memory { get; init; }
    public required int Cpus { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>The host key the template's SSH server showed: every clone must show the same.</summary>
    public required string HostKeyFingerprint { get; init; }

    /// <summary>Length of the device-state file, to tell a damaged one before QEMU reads it.</summary>
    public required long StateLength { get; init; }

    /// <summary>The files the template depends on, as fingerprints: when one changes, the template is stale.</summary>
    public required IReadOnlyList<string> Inputs { get; init; }

    /// <summary>
    /// The guest processes of the SSH session the template was saved with (its server's process
    /// for the connection, the SDK's shells), when it was saved logged in so that the VM it was
    /// made for could run on without a new login: each clone ends them, their client gone.
    /// </summary>
    public IReadOnlyList<int> SavedSession { get; init; } = [];

    /// <summary>Where it was made: its inputs are judged (and it is pruned) only there.</summary>
    public Processes.HostIdentity? MadeOn { get; init; }

    [JsonIgnore]
    public TemplateFiles Files { get; init; } = null!;
}

/// <summary>
/// The files of a template's folder. A template is made by booting a VM in that folder, so the
/// VM's own names (console, key, disk overlay) are the template's.
/// </summary>
internal sealed record TemplateFiles(string Directory)
{
    public string Record => Path.Combine(Directory, "template.json");

    /// <summary>The guest's RAM at the moment it was saved.</summary>
    public string Memory => Path.Combine(Directory, "memory.ram");

    /// <summary>QEMU's device state (CPUs, devices), without RAM.</summary>
    public string State => Path.Combine(Directory, "state.bin");

    /// <summary>The files of the VM that made the template; its id names its control socket when that falls back to the temp folder.</summary>
    public VmFiles Vm(string id) => new(id, Directory);
}

/// <summary>
/// A template key on which warm start failed in a step only warm start has (the guest refused
/// a clone, or the template answered and could not be saved): VMs of that key boot cold at once
/// until its image or options change (another key) or the entry is removed.
/// </summary>
internal sealed record TemplateFailure
{
    public required string Key { get; init; }
    public required string Image { get; init; }
    public required int Memory { get; init; }
    public required int Cpus { get; init; }
    public required string Reason { get; init; }
    public required DateTimeOffset FailedAt { get; init; }

    /// <summary>As <see cref="Template.Inputs"/>: once one changed, the entry is stale and pruned.</summary>
    public IReadOnlyList<string> Inputs { get; init; } = [];

    /// <summary>As <see cref="Template.MadeOn"/>.</summary>
    public Processes.HostIdentity? MadeOn { get; init; }
}
