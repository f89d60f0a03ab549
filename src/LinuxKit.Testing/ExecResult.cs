namespace LinuxKit.Testing;

/// <summary>What a command run in a VM returned.</summary>
/// <param name="ExitCode">The command's exit status; -1 when it was killed by a signal.</param>
/// <param name="Stdout">Its standard output.</param>
/// <param name="Stderr">Its standard error.</param>
public sealed record ExecResult(int ExitCode, string Stdout, string Stderr);
