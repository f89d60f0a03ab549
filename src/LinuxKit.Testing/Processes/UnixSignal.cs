namespace LinuxKit.Testing.Processes;

/// <summary>The POSIX signals the SDK sends (same numbers on Linux and macOS).</summary>
internal enum UnixSignal
{
    Kill = 9,
    Term = 15,
}
