using System.Buffers;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// Turns an argument list into one POSIX shell command line. SSH carries a single string that
/// the remote shell splits again, so every argument is quoted: <c>["echo", "a b; rm -rf /"]</c>
/// prints <c>a b; rm -rf /</c> and runs nothing else.
/// </summary>
internal static class ShellQuoting
{
    private static readonly SearchValues<char> Safe =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@%+,");

    public static string Join(IReadOnlyList<string> arguments)
    {
        if (arguments.Count == 0) throw new LinuxKitException("The command is empty: give at least the program to run.");
        // The program is always quoted: unquoted, a reserved word ("done", "fi") would be
        // shell syntax and NAME=value an assignment, where the caller meant a program to run.
        return string.Join(' ', arguments.Skip(1).Select(Quote).Prepend(AlwaysQuoted(arguments[0])));
    }

    private static string AlwaysQuoted(string argument) =>
        "'" + argument.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    public static string Quote(string argument)
    {
        if (argument.Length > 0 && !argument.AsSpan().ContainsAnyExcept(Safe)) return argument;
        // Inside single quotes nothing is special but the quote itself: close, escape it, reopen.
        return AlwaysQuoted(argument);
    }
}
