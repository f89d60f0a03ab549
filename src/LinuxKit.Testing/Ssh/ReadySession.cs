namespace LinuxKit.Testing.Ssh;

/// <summary>
/// A session that ran a command on a booted VM, how many connections it took to get there, and
/// when each attempt ended (seconds since the wait began), for diagnostics.
/// </summary>
internal sealed record ReadySession(SshSession Session, string Banner, int Connections, string Timeline);
