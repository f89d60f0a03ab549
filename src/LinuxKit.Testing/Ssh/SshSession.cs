using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>Where and as whom to reach a VM's SSH server.</summary>
internal sealed record SshEndpoint(string Host, int Port, string User, string PrivateKeyPath);

/// <summary>
/// One SSH connection to a VM, reused by every command (a command on an open connection costs
/// a channel, not a handshake). The host key seen first is pinned: a different key later is
/// refused, not trusted.
/// </summary>
internal sealed class SshSession : IDisposable
{
    private readonly SshClient _client;

    private SshSession(SshClient client, string hostKeyFingerprint)
    {
        _client = client;
        HostKeyFingerprint = hostKeyFingerprint;
    }

    private static readonly TimeSpan ChannelRequestTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The SHA-256 fingerprint of the server's host key.</summary>
    public string HostKeyFingerprint { get; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>
    /// Connects and authenticates. With <paramref name="pinnedFingerprint"/> the server must show
    /// that host key; without, the key it shows is pinned from now on.
    /// </summary>
    public static async Task<SshSession> ConnectAsync(SshEndpoint endpoint, string? pinnedFingerprint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        PrivateKeyFile key;
        try
        {
            key = new PrivateKeyFile(endpoint.PrivateKeyPath);
        }
        catch (Exception e) when (e is IOException or SshException or UnauthorizedAccessException or ArgumentException)
        {
            throw new LinuxKitException($"SSH key '{endpoint.PrivateKeyPath}' cannot be loaded: {e.Message}", e);
        }
        var info = new PrivateKeyConnectionInfo(endpoint.Host, endpoint.Port, endpoint.User, key) { Timeout = timeout };
        var client = new SshClient(info);
        string? seen = null;
        client.HostKeyReceived += (_, e) =>
        {
            seen = e.FingerPrintSHA256;
            e.CanTrust = pinnedFingerprint is null || string.Equals(pinnedFingerprint, seen, StringComparison.Ordinal);
        };
        try
        {
            await client.ConnectAsync(cancellationToken);
            // From now on the timeout bounds each channel request (open, exec): a guest under
            // TCG on a loaded host answers slowly, and one that never answers must not hang us.
            client.ConnectionInfo.Timeout = ChannelRequestTimeout;
            return new SshSession(client, seen!);
        }
        catch (SshConnectionException) when (pinnedFingerprint is not null && seen is not null && seen != pinnedFingerprint)
        {
            client.Dispose();
            throw new LinuxKitException(
                $"The SSH server on {endpoint.Host}:{endpoint.Port} shows host key {seen}, not the key {pinnedFingerprint} it showed at boot; refusing to connect.");
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs a shell command line. Commands go to long-lived shells on the connection (at most
    /// <see cref="MaxParallelChannels"/>, started as parallel callers need them and reused), which
    /// spares each command a channel and a new shell in the guest (under TCG that is most of its
    /// cost). A user's command never rides on an exec request: under load dropbear was seen to
    /// leave an exec request unanswered for good, and a shell that did not start is simply
    /// started again, which a command that may have run could not be.
    /// </summary>
    public async Task<ExecResult> RunAsync(string commandLine, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        ResidentShell? shell = null;
        try
        {
            if (!_idle.TryPop(out shell)) shell = await StartShellAsync(cancellationToken);
            if (shell is null) return await RunOnOwnChannelAsync(commandLine, cancellationToken);
            ExecResult result;
            try
            {
                result = await shell.RunAsync(commandLine, cancellationToken);
            }
            catch (ResidentShellEndedException e) when (e.NeverRan)
            {
                // The server turned the shell's channel down: the command never ran, so it runs
                // on a channel of its own instead; the next command tries a new shell.
                return await RunOnOwnChannelAsync(commandLine, cancellationToken);
            }
            _idle.Push(shell);
            shell = null;
            return result;
        }
        finally
        {
            // A shell cancelled or broken midway is in an unknown state: it is not reused.
            shell?.Dispose();
            _slots.Release();
        }
    }

    private async Task<ResidentShell?> StartShellAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await ResidentShell.TryStartAsync(_client, StartAsync);
            }
            catch (SshOperationTimeoutException) when (attempt < 3)
            {
                // The exec request of "sh" went unanswered; nothing of the caller's ran yet.
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
    }

    private async Task<ExecResult> RunOnOwnChannelAsync(string commandLine, CancellationToken cancellationToken)
    {
        using var command = _client.CreateCommand(commandLine);
        await await StartAsync(command, cancellationToken);
        return new ExecResult(command.ExitStatus ?? -1, command.Result, command.Error);
    }

    /// <summary>
    /// Writes <paramref name="content"/> to a guest file through <c>cat</c> on a channel of its
    /// own: it needs nothing but a POSIX shell in the guest, where SFTP needs a server most
    /// LinuxKit images do not have. The file appears whole or not at all (written beside it,
    /// then renamed); missing parent folders are created.
    /// </summary>
    public async Task<ExecResult> WriteFileAsync(string guestPath, Stream content, long? length, string octalMode, string owner, CancellationToken cancellationToken)
    {
        var path = ShellQuoting.Quote(guestPath);
        // A cancelled copy still ends the guest's stdin like a finished one: the size check keeps
        // a partial file from being renamed into place.
        var sizeCheck = length is { } n ? $"[ $(wc -c < \"$t\") -eq {n} ] || {{ echo 'incomplete copy' >&2; exit 5; }}; " : "";
        var script =
            $"set -e; t={path}.linuxkit-$$; trap 'rm -f \"$t\"' EXIT; " +
            $"mkdir -p -- \"$(dirname -- {path})\"; cat > \"$t\"; {sizeCheck}" +
            $"chmod {octalMode} \"$t\"; chown {owner} \"$t\"; mv -f -- \"$t\" {path}; trap - EXIT";
        await _slots.WaitAsync(cancellationToken);
        try
        {
            using var command = _client.CreateCommand(script);
            var running = await StartAsync(command, cancellationToken);
            await using (var input = command.CreateInputStream())
            {
                await content.CopyToAsync(input, cancellationToken);
            }
            await running;
            return new ExecResult(command.ExitStatus ?? -1, "", command.Error);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>
    /// Reads a guest file's bytes through <c>cat</c>. Exit status 2 means the file does not
    /// exist, 3 that it is a folder.
    /// </summary>
    public async Task<(int ExitCode, byte[] Content, string Error)> ReadFileAsync(string guestPath, CancellationToken cancellationToken)
    {
        var path = ShellQuoting.Quote(guestPath);
        var script = $"[ -e {path} ] || exit 2; [ ! -d {path} ] || exit 3; exec cat -- {path}";
        await _slots.WaitAsync(cancellationToken);
        try
        {
            using var command = _client.CreateCommand(script);
            var running = await StartAsync(command, cancellationToken);
            using var bytes = new MemoryStream();
            var chunk = new byte[64 * 1024];
            int read;
            // WaitAsync: SSH.NET's channel streams ignore the token once a read waits.
            while ((read = await command.OutputStream.ReadAsync(chunk, cancellationToken).AsTask().WaitAsync(cancellationToken)) > 0)
                bytes.Write(chunk, 0, read);
            await running;
            return (command.ExitStatus ?? -1, bytes.ToArray(), command.Error);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>
    /// Opens the command's channel and sends its exec request, one request at a time on the
    /// connection; returns the running command.
    /// </summary>
    private async Task<Task> StartAsync(SshCommand command, CancellationToken cancellationToken)
    {
        await _requests.WaitAsync(cancellationToken);
        try
        {
            // SSH.NET opens the channel and waits for the exec request's reply before returning.
            return command.ExecuteAsync(cancellationToken);
        }
        finally
        {
            _requests.Release();
        }
    }

    // More channels than a handful at once on one connection were seen to time out under TCG;
    // callers past the limit wait here instead, cancellably.
    private const int MaxParallelChannels = 4;
    private readonly SemaphoreSlim _slots = new(MaxParallelChannels, MaxParallelChannels);
    private readonly SemaphoreSlim _requests = new(1, 1);
    private readonly System.Collections.Concurrent.ConcurrentStack<ResidentShell> _idle = new();

    public void Dispose()
    {
        while (_idle.TryPop(out var shell)) shell.Dispose();
        _client.Dispose();
        _slots.Dispose();
        _requests.Dispose();
    }
}
