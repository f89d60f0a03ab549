using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// A <c>sh</c> kept running on an SSH connection, fed one command at a time with stdin from
/// /dev/null, so that it cannot eat the commands after it. A command runs in a subshell, so it
/// cannot change or end the resident shell, unless it is a builtin that can do neither
/// (<see cref="ShellCommand"/>). Output a process may write goes to files of the command's own in
/// a private folder of the guest, so what a command's background children write later lands in
/// its emptied files, never in another command's result. The shell then sends the command's
/// stdout, its stderr and its exit status on its own stdout, between markers carrying a fresh
/// random nonce that no output can fake.
/// </summary>
internal sealed class ResidentShell : ICommandShell
{
    private readonly SshCommand _command;
    private readonly SshClient _client;
    private readonly Task _execution;
    private readonly Stream _input;
    private readonly MarkerReader _stdout;
    private readonly Task<string> _shellErrors;
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
        // Nothing of a command's reaches the shell's stderr; what does (the shell's own last
        // words) is read all the time, so it cannot pile up, and its tail kept for the error.
        var errors = command.ExtendedOutputStream;
        _shellErrors = Task.Factory.StartNew(() => BoundedRead.Tail(errors, ShellErrorsKept), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private const int ShellErrorsKept = 1024;

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
    /// <param name="command">The command, as one shell command line.</param>
    /// <param name="outputLimit">The most bytes taken of stdout and of stderr each; more is an error that names the limit.</param>
    public async Task<ExecResult> RunAsync(ShellCommand command, long outputLimit)
    {
        _sequence++;
        var markers = new Markers(Convert.ToHexString(RandomNumberGenerator.GetBytes(8)));
        var take = (outputLimit + 1).ToString(CultureInfo.InvariantCulture);
        var script = (_sequence == 1 ? Prologue : "") + Script(command, _sequence, markers.Nonce, take, out var startMarked);
        await _input.WriteAsync(Encoding.UTF8.GetBytes(script)).ConfigureAwait(false);
        await _input.FlushAsync().ConfigureAwait(false);

        // What the shell sends is head's bounded output (an echo's is bounded by its arguments);
        // more than that plus the markers means the guest does not follow the script
        // (a replaced head, a hostile guest), and the shell is given up (the scheduler discards
        // a shell whose command threw, which closes its channel).
        var allowed = outputLimit + 1;
        if (startMarked) await ReadPartAsync(markers.Start, keep: false, allowed, "standard output", outputLimit).ConfigureAwait(false);
        var stdout = await ReadPartAsync(markers.Middle, keep: true, allowed, "standard output", outputLimit).ConfigureAwait(false);
        var stderr = await ReadPartAsync(markers.End, keep: true, allowed, "standard error", outputLimit).ConfigureAwait(false);
        var exitCode = int.Parse(stderr.RestOfLine.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture);
        return new ExecResult(exitCode, Encoding.UTF8.GetString(stdout.Output), Encoding.UTF8.GetString(stderr.Output));
    }

    // Up to the marker's line; what the guest sent before the start marker is none of the
    // command's and is dropped (keep: false).
    private async Task<(byte[] Output, string RestOfLine)> ReadPartAsync(byte[] marker, bool keep, long allowed, string name, long outputLimit)
    {
        (byte[] Output, string RestOfLine)? part;
        try
        {
            part = await _stdout.ReadUntilAsync(marker, keep, allowed).ConfigureAwait(false);
        }
        catch (FloodException)
        {
            throw SshSession.OverOutputLimit(name, outputLimit);
        }
        if (part is null) throw await EndedAsync().ConfigureAwait(false);
        if (part.Value.Output.Length > outputLimit) throw SshSession.OverOutputLimit(name, outputLimit);
        return part.Value;
    }

    // One command's markers: its stdout follows the start, its stderr the middle, its exit
    // status the end marker.
    private sealed class Markers(string nonce)
    {
        public string Nonce { get; } = nonce;

        public byte[] Start { get; } = Encoding.ASCII.GetBytes(Marker(nonce, "start"));

        public byte[] Middle { get; } = Encoding.ASCII.GetBytes(Marker(nonce, "middle"));

        public byte[] End { get; } = Encoding.ASCII.GetBytes(Marker(nonce, "end"));
    }

    // The shell functions of Prologue spell the same, with the nonce as their third argument.
    private static string Marker(string nonce, string part) => $"__linuxkit_testing_{nonce}_{part}__";

    // Defined once per shell, so that each command is a short line: under TCG the shell's
    // parsing of a long one costs more than a millisecond. Arguments: exit status, sequence,
    // nonce, how many bytes head takes. Output is read by head only when there is some, and a
    // read file is emptied by a builtin (freeing its data), so that a command with no output
    // starts no process but its own; a command with neither output writes all its markers in
    // one printf, one SSH message.
    internal const string Prologue =
        "__linuxkit_tail() { if [ -s \"$LINUXKIT_OUT/e$2\" ]; then printf '%s\\n' \"__linuxkit_testing_$3_middle__\"; head -c \"$4\" \"$LINUXKIT_OUT/e$2\"; : >\"$LINUXKIT_OUT/e$2\"; printf '%s %d\\n' \"__linuxkit_testing_$3_end__\" \"$1\"; " +
        "else printf '%s\\n%s %d\\n' \"__linuxkit_testing_$3_middle__\" \"__linuxkit_testing_$3_end__\" \"$1\"; fi; }\n" +
        "__linuxkit_send() { if [ -s \"$LINUXKIT_OUT/o$2\" ] || [ -s \"$LINUXKIT_OUT/e$2\" ]; then printf '%s\\n' \"__linuxkit_testing_$3_start__\"; " +
        "if [ -s \"$LINUXKIT_OUT/o$2\" ]; then head -c \"$4\" \"$LINUXKIT_OUT/o$2\"; : >\"$LINUXKIT_OUT/o$2\"; fi; __linuxkit_tail \"$@\"; " +
        "else printf '%s\\n%s\\n%s %d\\n' \"__linuxkit_testing_$3_start__\" \"__linuxkit_testing_$3_middle__\" \"__linuxkit_testing_$3_end__\" \"$1\"; fi; }\n";

    // Files of their own per command (o1/e1, o2/e2, ...): what a background child of a command
    // writes later lands in that command's files, never in another's. A builtin run by the shell
    // itself leaves no child, so its stdout goes straight out. The empty files are removed by one
    // rm every CleanupEvery commands.
    // The start marker skips what a shell's startup files print (bash reads .bashrc for SSH
    // commands) before the first command. After one command, nothing but the script writes to
    // the shell's stdout (commands' processes write to their files), and every command is read
    // through its end marker, so a builtin's output starts right there; a start marker printed
    // apart from the rest would cost a second SSH message, often as long as the command.
    internal static string Script(ShellCommand command, int sequence, string nonce, string take, out bool startMarked)
    {
        var arguments = $"$? {sequence} {nonce} {take}";
        var cleanup = sequence % CleanupEvery == 0 ? $"rm -f \"$LINUXKIT_OUT\"/o* \"$LINUXKIT_OUT\"/e*\n" : "";
        startMarked = !command.InShell || sequence == 1;
        var run = command.InShell
            ? $"{(sequence == 1 ? $"printf '%s\\n' {Marker(nonce, "start")}; " : "")}{command.Line} </dev/null 2>\"$LINUXKIT_OUT/e{sequence}\"; __linuxkit_tail {arguments}\n"
            : $"( {command.Line}\n) </dev/null >\"$LINUXKIT_OUT/o{sequence}\" 2>\"$LINUXKIT_OUT/e{sequence}\"; __linuxkit_send {arguments}\n";
        return run + cleanup;
    }

    private const int CleanupEvery = 64;

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
        // The shell's stderr has ended by now unless the channel hangs; its tail may say why.
        await Task.WhenAny(_shellErrors, Task.Delay(TimeSpan.FromMilliseconds(200))).ConfigureAwait(false);
        var said = _shellErrors.IsCompletedSuccessfully ? _shellErrors.Result.Trim() : "";
        var lastWords = said.Length > 0 ? $"; the shell said: {said}" : "";
        return new ResidentShellEndedException($"The resident shell ended while a command ran ({why}{lastWords}).", neverRan);
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
