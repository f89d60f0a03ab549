using System.Globalization;

namespace LinuxKit.Testing.Processes;

/// <summary>
/// Starts a long-running program outside this process's tree, for hypervisors and helpers that
/// do not daemonize themselves (hyperkit, vpnkit): a shell starts it in the background and
/// exits, so the program is reparented to init, as QEMU's -daemonize does. Ctrl-C (SIGINT) and
/// a closing terminal (SIGHUP) do not reach it.
/// </summary>
internal static class DetachedProcess
{
    private const string Script = """
        out=$1; err=$2; shift 2
        trap '' INT HUP
        umask 077
        "$@" </dev/null >>"$out" 2>>"$err" &
        echo $!
        """;

    /// <summary>Starts <paramref name="binary"/> and returns its PID.</summary>
    /// <param name="binary">The program.</param>
    /// <param name="arguments">Its arguments, each passed as given.</param>
    /// <param name="stdout">The file its standard output is appended to.</param>
    /// <param name="stderr">The file its standard error is appended to.</param>
    /// <param name="cancellationToken">Cancels the wait for the shell (the program may have started).</param>
    public static async Task<ProcessIdentity> StartAsync(string binary, IEnumerable<string> arguments, string stdout, string stderr, CancellationToken cancellationToken)
    {
        var outcome = await ProcessRunner.RunAsync(
            "/bin/sh",
            ["-c", Script, "linuxkit-testing-detach", stdout, stderr, binary, .. arguments],
            TimeSpan.FromSeconds(30),
            cancellationToken).ConfigureAwait(false);
        if (outcome.ExitCode != 0 || !int.TryParse(outcome.Stdout.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            throw new LinuxKitException($"Cannot start {binary}: {outcome.Stderr.Trim()}");
        // A program that fails at once may be gone before its identity is read.
        return ProcessIdentity.Of(pid) ?? new ProcessIdentity(pid, "");
    }
}
