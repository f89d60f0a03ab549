using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// One VM's boot as it goes: the record so far, the host ports held, the hypervisor once it
/// started. A warm start that falls back to a cold boot undoes its attempt and the cold boot
/// goes on with the same one; a boot that fails undoes it for good.
/// </summary>
internal sealed class BootAttempt(VmRecord record, string description)
{
    public VmRecord Record { get; set; } = record;

    /// <summary>"VM ID (NAME)", for messages.</summary>
    public string Description { get; } = description;

    public List<PortReservation> Reservations { get; } = [];

    public ProcessIdentity? Process { get; set; }

    /// <summary>Releases the ports still held (the hypervisor has bound them, or never will).</summary>
    public void ReleasePorts()
    {
        foreach (var reservation in Reservations) reservation.Dispose();
        Reservations.Clear();
    }

    /// <summary>
    /// Leaves nothing of the attempt behind that a next one could trip over: the hypervisor is
    /// killed (there is nothing to shut down gracefully), its ports and runtime files go. The
    /// record keeps its identity, its console log and its status.
    /// </summary>
    public async Task UndoAsync()
    {
        if (Process is { } process) await process.KillAsync(CancellationToken.None).ConfigureAwait(false);
        Process = null;
        ReleasePorts();
        Record.RemoveRuntimeFiles();
        Record = Record with { RuntimeFiles = [], Pid = 0, PidStartTime = null, Template = null };
    }
}
