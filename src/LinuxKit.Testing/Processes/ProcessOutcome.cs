namespace LinuxKit.Testing.Processes;

/// <summary>The outcome of a program run to completion.</summary>
internal sealed record ProcessOutcome(int ExitCode, string Stdout, string Stderr);
