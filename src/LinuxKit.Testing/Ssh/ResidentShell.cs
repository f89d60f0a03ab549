using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// A <c>sh</c> kept running on an SSH connection, fed one command at a time. Each command runs
/// in a subshell with stdin from /dev/null, so it cannot change or end the resident shell or eat
/// the commands after it. Its end is marked on stdout (with the exit status) and on stderr by a
/// marker that carries a random nonce, so no output can fake it.
/// </summary>
internal sealed class ResidentShell : IDisposable
{
    private readonly SshCommand _command;
    private readonly Task _execution;
    private readonly Stream _input;
    private readonly string _nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(8));
    private int _sequence;

    private ResidentShell(SshCommand command, Task execution, Stream input)
    {
        _command = command;
        _execution = execution;
        _input = input;
    }

    /// <summary>
    /// Starts the shell; null when the server will not run one. An exec request left unanswered
    /// throws <see cref="SshOperationTimeoutException"/>, so the caller can try again. SSH.NET
    /// has sent the exec request when this returns.
    /// </summary>
    public static ResidentShell? TryStart(SshClient client)
    {
        var command = client.CreateCommand("exec sh");
        try
        {
            // The shell outlives this call: its execution is not cancelled by any caller's token.
            var execution = command.ExecuteAsync(CancellationToken.None);
            return new ResidentShell(command, execution, command.CreateInputStream());
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
    /// which breaks any channel dropbear is starting at that moment (see <see cref="SshSession"/>).
    /// </summary>
    public async Task<ExecResult> RunAsync(string commandLine)
    {
        var marker = $"__linuxkit_testing_{_nonce}_{++_sequence}__";
        var script = $"( {commandLine}\n) </dev/null; printf '%s %d\\n' {marker} $?; printf '%s\\n' {marker} >&2\n";
        await _input.WriteAsync(Encoding.UTF8.GetBytes(script)).ConfigureAwait(false);
        await _input.FlushAsync().ConfigureAwait(false);

        var markerBytes = Encoding.ASCII.GetBytes(marker);
        var (stdout, statusLine) = await ReadUntilMarkerAsync(_command.OutputStream, markerBytes).ConfigureAwait(false) ?? throw await EndedAsync().ConfigureAwait(false);
        var (stderr, _) = await ReadUntilMarkerAsync(_command.ExtendedOutputStream, markerBytes).ConfigureAwait(false) ?? throw await EndedAsync().ConfigureAwait(false);
        var exitCode = int.Parse(statusLine.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture);
        return new ExecResult(exitCode, stdout, stderr);
    }

    // Why the shell's output ended before the marker. When the exec request itself failed, no
    // shell ever ran, so the command did not run either and may safely go elsewhere.
    private async Task<ResidentShellEndedException> EndedAsync()
    {
        await Task.WhenAny(_execution, Task.Delay(TimeSpan.FromSeconds(2))).ConfigureAwait(false);
        var neverRan = _execution.IsFaulted && _sequence == 1;
        var why = _execution.IsFaulted ? _execution.Exception!.InnerException?.Message
            : _execution.IsCanceled ? "its execution was cancelled"
            : _execution.IsCompleted ? $"exit status {_command.ExitStatus?.ToString(CultureInfo.InvariantCulture) ?? "none"}, signal {_command.ExitSignal ?? "none"}"
            : "the channel closed";
        return new ResidentShellEndedException($"The resident shell ended while a command ran ({why}).", neverRan);
    }

    // Everything before the marker, and the rest of the marker's line; null when the stream ended first.
    private static async Task<(string Before, string RestOfLine)?> ReadUntilMarkerAsync(Stream stream, byte[] marker)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        var searchFrom = 0;
        while (true)
        {
            var read = await stream.ReadAsync(chunk).ConfigureAwait(false);
            if (read == 0) return null;
            buffer.Write(chunk, 0, read);
            var data = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
            var at = data[searchFrom..].IndexOf(marker);
            if (at < 0)
            {
                searchFrom = Math.Max(0, data.Length - marker.Length);
                continue;
            }
            at += searchFrom;
            var after = at + marker.Length;
            var newline = data[after..].IndexOf((byte)'\n');
            if (newline < 0) continue; // the marker's line is not complete yet
            return (Encoding.UTF8.GetString(data[..at]), Encoding.ASCII.GetString(data.Slice(after, newline)));
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
