using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// One SSH connection to a VM, reused by every command (a command on an open connection costs
/// a channel, not a handshake). The host key seen first is pinned: a different key later is
/// refused, not trusted. Which channel work runs on, and when, is the <see cref="ChannelScheduler"/>'s;
/// what file copies send is <see cref="GuestFiles"/>'.
/// </summary>
internal sealed class SshSession : IDisposable
{
    private readonly SshClient _client;
    private readonly ChannelScheduler _scheduler;

    private SshSession(SshClient client, string hostKeyFingerprint, string hostKey)
    {
        _client = client;
        HostKeyFingerprint = hostKeyFingerprint;
        HostKey = hostKey;
        // Only dropbear races channel starts against exiting processes (see ChannelScheduler).
        var oneAtATime = client.ConnectionInfo.ServerVersion?.Contains("dropbear", StringComparison.OrdinalIgnoreCase) ?? true;
        _scheduler = new ChannelScheduler(StartShell, oneAtATime, TimeLimits.SshChannelRequest);
    }

    /// <summary>The SHA-256 fingerprint of the server's host key.</summary>
    public string HostKeyFingerprint { get; }

    /// <summary>The server's host key as known_hosts writes it: "TYPE BASE64".</summary>
    public string HostKey { get; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>The most bytes a command's stdout or stderr, or a file read back, may have.</summary>
    public long OutputLimit { get; set; } = LinuxKitManagerOptions.DefaultOutputLimit;

    /// <summary>
    /// Connects and authenticates. With <paramref name="pinnedFingerprint"/> the server must show
    /// that host key; without, the key it shows is pinned from now on. <paramref name="serverVersion"/>
    /// receives the server's banner when one came, also when the connect fails after it.
    /// </summary>
    public static async Task<SshSession> ConnectAsync(
        SshEndpoint endpoint, string? pinnedFingerprint, TimeSpan timeout, CancellationToken cancellationToken, System.Runtime.CompilerServices.StrongBox<string?>? serverVersion = null)
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
        string? hostKey = null;
        client.HostKeyReceived += (_, e) =>
        {
            seen = e.FingerPrintSHA256;
            hostKey = $"{e.HostKeyName} {Convert.ToBase64String(e.HostKey)}";
            e.CanTrust = pinnedFingerprint is null || string.Equals(pinnedFingerprint, seen, StringComparison.Ordinal);
        };
        try
        {
            await client.ConnectAsync(cancellationToken).ConfigureAwait(false);
            // From now on the timeout bounds each channel request (open, exec): a guest under
            // TCG on a loaded host answers slowly, and one that never answers must not hang us.
            client.ConnectionInfo.Timeout = TimeLimits.SshChannelRequest;
            return new SshSession(client, seen!, hostKey!);
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
        finally
        {
            if (serverVersion is not null) serverVersion.Value = info.ServerVersion;
        }
    }

    /// <summary>
    /// Runs a command on a resident shell of the connection (see <see cref="ChannelScheduler"/>):
    /// a command spared a channel and a new shell in the guest costs little under TCG. A caller
    /// that cancels stops waiting; the command runs to its end in the guest.
    /// </summary>
    public Task<ExecResult> RunAsync(ShellCommand command, CancellationToken cancellationToken) =>
        _scheduler.RunAsync(command, OutputLimit, () => RunOnChannelAsync(command.Line), cancellationToken);

    /// <summary>Runs a script of the SDK's own on a resident shell (see <see cref="RunAsync(ShellCommand, CancellationToken)"/>).</summary>
    public Task<ExecResult> RunAsync(string script, CancellationToken cancellationToken) => RunAsync(ShellCommand.Script(script), cancellationToken);

    private ICommandShell? StartShell()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return ResidentShell.TryStart(_client);
            }
            catch (SshOperationTimeoutException) when (attempt < 3)
            {
                // The exec request of "sh" went unanswered; nothing of anyone's ran yet.
            }
        }
    }

    private async Task<ExecResult> RunOnChannelAsync(string commandLine)
    {
        // Only where the server runs no resident shell (it refused one): a command past the
        // limit is ended.
        using var command = _client.CreateCommand(commandLine);
        var running = command.ExecuteAsync(CancellationToken.None);
        var (stdout, stderr) = await BoundedRead.BothAsync(command.OutputStream, OutputLimit, command.ExtendedOutputStream, OutputLimit).ConfigureAwait(false);
        if (stdout is null || stderr is null)
        {
            Cancel(command);
            await running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw OverOutputLimit(stdout is null ? "standard output" : "standard error", OutputLimit);
        }
        await running.ConfigureAwait(false);
        return new ExecResult(command.ExitStatus ?? -1, System.Text.Encoding.UTF8.GetString(stdout), System.Text.Encoding.UTF8.GetString(stderr));
    }

    /// <summary>The error for a command whose <paramref name="stream"/> is over <paramref name="limit"/> bytes.</summary>
    public static LinuxKitException OverOutputLimit(string stream, long limit) =>
        new($"The command's {stream} is over the output limit of {limit} bytes (LinuxKitManagerOptions.OutputLimit). Redirect it to a file in the guest, or raise the limit.");

    /// <summary>
    /// Runs <paramref name="script"/> on a channel of its own with <paramref name="input"/> as its
    /// stdin. A cancelled copy ends stdin like a finished one, so the script must itself refuse
    /// input that is short (<see cref="GuestFiles"/> checks the size).
    /// </summary>
    public Task<ExecResult> RunWithInputAsync(string script, Stream input, CancellationToken cancellationToken) =>
        _scheduler.OnChannelOfItsOwnAsync(async abandoned =>
        {
            using var command = _client.CreateCommand(script);
            var running = command.ExecuteAsync(CancellationToken.None);
            // The script's stdout is nothing, its stderr an error message: read while the copy
            // runs, so neither can pile up in SSH.NET's buffers.
            var output = BoundedRead.BothAsync(command.OutputStream, BoundedRead.ErrorTextLimit, command.ExtendedOutputStream, BoundedRead.ErrorTextLimit);
            try
            {
                var stdin = command.CreateInputStream();
                await using var stdinDisposal = stdin.ConfigureAwait(false);
                await input.CopyToAsync(stdin, abandoned).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (abandoned.IsCancellationRequested)
            {
                // Stdin ends here all the same; the script refuses the short input.
            }
            finally
            {
                // Also when reading the input failed: the channel is left to close only after
                // its process ended (the scheduler's start lock).
                // Its output ends early only when the script floods it.
                await Task.WhenAny(running, output).ConfigureAwait(false);
            }
            var (_, stderr) = await OverflowEndsAsync(command, running, output, BoundedRead.ErrorTextLimit).ConfigureAwait(false);
            await running.ConfigureAwait(false);
            return new ExecResult(command.ExitStatus ?? -1, "", System.Text.Encoding.UTF8.GetString(stderr));
        }, cancellationToken);

    /// <summary>Runs <paramref name="script"/> on a channel of its own and returns its stdout as bytes, at most <paramref name="limit"/>.</summary>
    public Task<(int ExitCode, byte[] Output, string Error)> RunReadingBytesAsync(string script, long limit, CancellationToken cancellationToken) =>
        _scheduler.OnChannelOfItsOwnAsync(async abandoned =>
        {
            using var command = _client.CreateCommand(script);
            var running = command.ExecuteAsync(CancellationToken.None);
            (byte[] Output, byte[] Error) read;
            // SSH.NET's output stream does not watch a token: a cancelled read is ended by
            // cancelling the command, which closes its channel and with it the stream.
            using (abandoned.Register(() => _ = Task.Run(() => Cancel(command))))
            {
                try
                {
                    read = await OverflowEndsAsync(command, running, BoundedRead.BothAsync(command.OutputStream, limit, command.ExtendedOutputStream, BoundedRead.ErrorTextLimit), limit).ConfigureAwait(false);
                }
                catch (ObjectDisposedException) when (abandoned.IsCancellationRequested)
                {
                    read = ([], []); // closed under the read by the cancel
                }
            }
            // The channel closes, so no other channel's start may race it: the start lock is held
            // until then.
            await running.WaitAsync(TimeLimits.SshChannelRequest, CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            abandoned.ThrowIfCancellationRequested();
            await running.ConfigureAwait(false);
            return (command.ExitStatus ?? -1, read.Output, System.Text.Encoding.UTF8.GetString(read.Error));
        }, cancellationToken);

    // A script past its limit is ended (its channel closes, the start lock is held until then)
    // and the caller told which stream.
    private static async Task<(byte[] Output, byte[] Error)> OverflowEndsAsync(SshCommand command, Task running, Task<(byte[]? Output, byte[]? Error)> reading, long limit)
    {
        var (output, error) = await reading.ConfigureAwait(false);
        if (output is not null && error is not null) return (output, error);
        Cancel(command);
        await running.WaitAsync(TimeLimits.SshChannelRequest, CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        throw error is null ? BoundedRead.ErrorTextFlood() : OverOutputLimit("standard output", limit);
    }

    private static void Cancel(SshCommand command)
    {
        try
        {
            command.CancelAsync(forceKill: true, millisecondsTimeout: 2000);
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException)
        {
            // It ended meanwhile, or its connection did.
        }
    }

    public void Dispose()
    {
        _scheduler.Dispose();
        // Shells and channels still running end with the connection. A connection whose VM is
        // gone cannot say goodbye; that is no error.
        try
        {
            _client.Dispose();
        }
        catch (Exception e) when (e is SshException or System.Net.Sockets.SocketException or IOException or ObjectDisposedException)
        {
        }
    }
}
