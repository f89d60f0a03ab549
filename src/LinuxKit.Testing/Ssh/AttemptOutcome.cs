namespace LinuxKit.Testing.Ssh;

/// <summary>What one attempt at a booting guest's SSH port came to.</summary>
internal enum AttemptOutcome
{
    /// <summary>The connection stayed open and silent until the attempt's time ran out.</summary>
    Silent,

    /// <summary>The guest answered and closed the connection: its network is up, nothing listens yet.</summary>
    Refused,

    /// <summary>Nothing accepts on the host side (a hypervisor still starting its port forwarder).</summary>
    NotListening,

    /// <summary>An SSH server sent its banner, but the handshake or the command failed.</summary>
    Answered,

    /// <summary>The handshake worked and the command ran.</summary>
    Ready,
}
