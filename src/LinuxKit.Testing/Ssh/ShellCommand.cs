namespace LinuxKit.Testing.Ssh;

/// <summary>
/// A command line for a <see cref="ResidentShell"/>, and whether the shell may run it itself
/// instead of in a subshell. A subshell is a fork, ~4 ms of a guest under TCG; it is spared only
/// for builtins that can neither change nor end the shell nor leave a child behind.
/// </summary>
internal readonly record struct ShellCommand(string Line, bool InShell)
{
    // Regular builtins of every POSIX shell (ash, dash, bash) that read no input and touch no
    // shell state. Not ':' (a special builtin: a failed redirection would end the shell) and not
    // printf (bash's -v assigns a variable).
    private static readonly HashSet<string> StatelessBuiltins = new(StringComparer.Ordinal) { "true", "false", "echo", "test", "[", "pwd" };

    /// <summary>An argument list, quoted (<see cref="ShellQuoting.Join"/>); a stateless builtin runs in the shell itself.</summary>
    public static ShellCommand FromArguments(IReadOnlyList<string> arguments) =>
        new(ShellQuoting.Join(arguments), StatelessBuiltins.Contains(arguments[0]));

    /// <summary>A script: always in a subshell.</summary>
    public static ShellCommand Script(string script) => new(script, InShell: false);
}
