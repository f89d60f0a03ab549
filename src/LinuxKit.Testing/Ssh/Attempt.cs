namespace LinuxKit.Testing.Ssh;

/// <summary>One attempt's outcome, the banner if one came, what it made, and why it failed.</summary>
internal readonly record struct Attempt<T>(AttemptOutcome Outcome, string? Banner = null, T? Value = default, Exception? Error = null);
