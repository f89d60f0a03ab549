using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// A <c>sh</c> kept running on an SSH connection, fed one command at a time. Each command runs
/// in a subshell with stdin from /dev/null, so it cannot change or end the resident shell or eat
/// the commands after it. Its output goes to files of its own in a private folder of the guest,
/// which the shell then sends between a start and an end marker carrying a fresh random nonce:
/// no output can fake a marker, and what a command's background children write later lands in
/// its removed files, never in another command's result.
/// </summary>
internal sealed class ResidentShell : ICommandShell
{
    private readonly SshCommand _command;
    private readonly SshClient _client;
    private readonly Task _execution;
    private readonly Stream _input;
    private readonly MarkerReader _stdout;
    private readonly MarkerReader _stderr;
    private int _sequence;

    // The shell's folder for command output; a shell that cannot make one exits with this code
    // before it reads any command.
    private const int NoOutputFolder = 97;
    private const string Start = "LINUXKIT_OUT=$(mktemp -d 2>/dev/null || mktemp -d -p /run 2>/dev/null) || exit 97; export LINUXKIT_OUT; sh; s=$?; rm -rf \"$LINUXKIT_OUT\"; exit $s";

    private ResidentShell(SshClient client, SshCommand command, Task execution, Stream input)
    {
        _client = client;
        _command = command;
        _execution = execution;
        _input = input;
        _stdout = new MarkerReader(command.OutputStream);
        _stderr = new MarkerReader(command.ExtendedOutputStream);
    }

    /// <summary>
    /// Starts the shell; null when the server will not run one. An exec request left unanswered
    /// throws <see cref="SshOperationTimeoutException"/>, so the caller can try again. SSH.NET
    /// has sent the exec request when this returns.
    /// </summary>
    public static ResidentShell? TryStart(SshClient client)
    {
        var command = client.CreateCommand(Start);
        try
        {
            // The shell outlives this call: its execution is not cancelled by any caller's token.
            var execution = command.ExecuteAsync(CancellationToken.None);
            return new ResidentShell(client, command, execution, command.CreateInputStream());
        }
        catch (SshOperationTimeoutException)
        {
            command.Dispose();
            throw;
        }
        catch (Exception e) when (e is SshException or InvalidOperationException)
        {
            command.Dispose();
            return null;
        }
    }

    /// <summary>
    /// Runs one command to its end. There is no token on purpose: a caller that stops waiting
    /// leaves the command to finish here, and the shell is usable again afterwards, because
    /// closing the channel of a running shell would make its process exit at an unknown moment,
    /// which breaks any channel dropbear is starting at that moment (see <see cref="ChannelScheduler"/>).
    /// </summary>
    /// <param name="commandLine">The command, as one shell command line.</param>
    /// <param name="outputLimit">The most bytes taken of stdout and of stderr each; more is an error that names the limit.</param>
    public async Task<ExecResult> RunAsync(string commandLine, long outputLimit)
    {
        _sequence++;
        var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
        var start = $"__linuxkit_testing_{nonce}_start__";
        var end = $"__linuxkit_testing_{nonce}_end__";
        var take = (outputLimit + 1).ToString(CultureInfo.InvariantCulture);
        var script = Script(commandLine, _sequence, start, end, take);
        await _input.WriteAsync(Encoding.UTF8.GetBytes(script)).ConfigureAwait(false);
        await _input.FlushAsync().ConfigureAwait(false);

        // Both together: the guest may fill either while the other is read. What the shell sends
        // is head's bounded output; more than that plus the markers means the guest does not
        // follow the script (a replaced head, a hostile guest), and the shell is given up (the
        // scheduler discards a shell whose command threw, which closes its channel).
        var allowed = outputLimit + 1;
        var stdoutRead = ReadBetweenAsync(_stdout, start, end, allowed);
        var stderrRead = ReadBetweenAsync(_stderr, start, end, allowed);
        if (await Task.WhenAny(stdoutRead, stderrRead).ConfigureAwait(false) is var first && first.IsFaulted && first.Exception?.InnerException is FloodException)
            throw SshSession.OverOutputLimit(first == stdoutRead ? "standard output" : "standard error", outputLimit);
        (byte[] Output, string RestOfLine)? stdoutBetween, stderrBetween;
        try
        {
            stdoutBetween = await stdoutRead.ConfigureAwait(false);
            stderrBetween = await stderrRead.ConfigureAwait(false);
        }
        catch (FloodException)
        {
            throw SshSession.OverOutputLimit(stdoutRead.IsFaulted ? "standard output" : "standard error", outputLimit);
        }
        var stdout = stdoutBetween ?? throw await EndedAsync().ConfigureAwait(false);
        var stderr = stderrBetween ?? throw await EndedAsync().ConfigureAwait(false);
        foreach (var (name, output) in new[] { ("standard output", stdout.Output), ("standard error", stderr.Output) })
        {
            if (output.Length > outputLimit) throw SshSession.OverOutputLimit(name, outputLimit);
        }
        var exitCode = int.Parse(stdout.RestOfLine.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture);
        return new ExecResult(exitCode, Encoding.UTF8.GetString(stdout.Output), Encoding.UTF8.GetString(stderr.Output));
    }

    // Files of their own per command (o1/e1, o2/e2, ...): what a background child of a command
    // writes later lands in that command's files, never in another's. Under TCG every process the
    // guest starts costs milliseconds, so the common case starts none but the command's subshell:
    // markers and an empty output take one builtin printf each, head runs only for output, read
    // files are emptied by a builtin (freeing their data), and the empty files are removed by one
    // rm every CleanupEvery commands.
    internal static string Script(string commandLine, int sequence, string start, string end, string take)
    {
        var o = $"\"$LINUXKIT_OUT/o{sequence}\"";
        var e = $"\"$LINUXKIT_OUT/e{sequence}\"";
        var cleanup = sequence % CleanupEvery == 0 ? $"rm -f \"$LINUXKIT_OUT\"/o* \"$LINUXKIT_OUT\"/e*\n" : "";
        return
            $"( {commandLine}\n) </dev/null >{o} 2>{e}; s=$?\n" +
            $"if [ -s {o} ]; then printf '%s\\n' {start}; head -c {take} {o}; printf '%s %d\\n' {end} $s; : >{o}; else printf '%s\\n%s %d\\n' {start} {end} $s; fi\n" +
            $"if [ -s {e} ]; then printf '%s\\n' {start} >&2; head -c {take} {e} >&2; printf '%s\\n' {end} >&2; : >{e}; else printf '%s\\n%s\\n' {start} {end} >&2; fi\n" +
            cleanup;
    }

    private const int CleanupEvery = 64;

    // What lies between this command's start and end markers; null when the stream ended first.
    // Anything before the start marker is none of this command's and is dropped.
    private static async Task<(byte[] Output, string RestOfLine)?> ReadBetweenAsync(MarkerReader reader, string start, string end, long allowed)
    {
        if (await reader.ReadUntilAsync(Encoding.ASCII.GetBytes(start), keep: false, allowed).ConfigureAwait(false) is null) return null;
        return await reader.ReadUntilAsync(Encoding.ASCII.GetBytes(end), keep: true, allowed).ConfigureAwait(false);
    }

    // More came than the script lets the shell send.
    private sealed class FloodException : Exception;

    // Why the shell's output ended before the marker. When the exec request itself failed, no
    // shell ever ran, so the command did not run either and may safely go elsewhere.
    private async Task<ResidentShellEndedException> EndedAsync()
    {
        await Task.WhenAny(_execution, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        // Refused outright (the server turned the channel down while the connection stayed up),
        // or no folder for output: in both cases the shell read no command. A connection that
        // broke may have carried the command already.
        var refused = _execution.IsFaulted && _execution.Exception?.InnerException is not SshConnectionException && _client.IsConnected;
        var neverRan = _sequence == 1 && (refused || (_execution.IsCompleted && _command.ExitStatus == NoOutputFolder));
        var why = _execution.IsFaulted ? _execution.Exception!.InnerException?.Message
            : _execution.IsCanceled ? "its execution was cancelled"
            : _execution.IsCompleted ? $"exit status {_command.ExitStatus?.ToString(CultureInfo.InvariantCulture) ?? "none"}, signal {_command.ExitSignal ?? "none"}"
            : "the channel closed";
        return new ResidentShellEndedException($"The resident shell ended while a command ran ({why}).", neverRan);
    }

    // Reads a stream up to markers, keeping what follows a marker's line for the next read.
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "A MemoryStream over its own array holds nothing to dispose.")]
    private sealed class MarkerReader(Stream stream)
    {
        private readonly MemoryStream _buffer = new(capacity: 8192);

        // The rest of a marker's line: a space and an exit code.
        private const int MarkerLineRest = 16;

        // Everything before the marker (when kept), and the rest of the marker's line; at most
        // <allowed> bytes before it (kept or dropped), else a FloodException.
        public async Task<(byte[] Before, string RestOfLine)?> ReadUntilAsync(byte[] marker, bool keep, long allowed)
        {
            var chunk = new byte[8192];
            var searchFrom = 0;
            long dropped = 0;
            while (true)
            {
                if (dropped + _buffer.Length > allowed + marker.Length + MarkerLineRest) throw new FloodException();
                var data = _buffer.GetBuffer().AsSpan(0, (int)_buffer.Length);
                var at = data[searchFrom..].IndexOf(marker);
                if (at >= 0)
                {
                    at += searchFrom;
                    var after = at + marker.Length;
                    var newline = data[after..].IndexOf((byte)'\n');
                    if (newline >= 0)
                    {
                        var before = keep ? data[..at].ToArray() : [];
                        var rest = Encoding.ASCII.GetString(data.Slice(after, newline));
                        var remainder = data[(after + newline + 1)..].ToArray();
                        _buffer.SetLength(0);
                        _buffer.Write(remainder);
                        return (before, rest);
                    }
                }
                else
                {
                    searchFrom = Math.Max(0, data.Length - marker.Length);
                    if (!keep && searchFrom > 0)
                    {
                        // Nothing before the start marker is kept: only a possible marker prefix.
                        var tail = data[searchFrom..].ToArray();
                        dropped += searchFrom;
                        _buffer.SetLength(0);
                        _buffer.Write(tail);
                        searchFrom = 0;
                    }
                }
                var read = await stream.ReadAsync(chunk).ConfigureAwait(false);
                if (read == 0) return null;
                _buffer.Write(chunk, 0, read);
            }
        }
    }

    /// <summary>
    /// Ends the shell the way it ends on its own: end of input, then its exit; waits for the
    /// server to close the channel, so the caller knows the process is gone.
    /// </summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        try
        {
            _input.Dispose();
            await _execution.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or IOException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            // Gone already, or the guest stopped answering: disposing is all that is left.
        }
        _command.Dispose();
    }

    public void Dispose()
    {
        // The connection may be dead already (the VM was stopped): nothing is left to tell the shell.
        try { _input.Dispose(); } catch (Exception e) when (e is SshException or ObjectDisposedException or IOException or System.Net.Sockets.SocketException) { }
        _command.Dispose();
    }
}
