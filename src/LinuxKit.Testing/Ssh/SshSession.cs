using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// One SSH connection to a VM, reused by every command (a command on an open connection costs
/// a channel, not a handshake). The host key seen first is pinned: a different key later is
/// refused, not trusted.
/// </summary>
internal sealed class SshSession : IDisposable
{
    private readonly SshClient _client;

    private SshSession(SshClient client, string hostKeyFingerprint, string hostKey)
    {
        _client = client;
        HostKeyFingerprint = hostKeyFingerprint;
        HostKey = hostKey;
        // Only dropbear needs channel starts one at a time (see _channelStarts); for any other
        // server the lock admits as many starts as there are channels, so it never waits.
        var oneAtATime = client.ConnectionInfo.ServerVersion?.Contains("dropbear", StringComparison.OrdinalIgnoreCase) ?? true;
        _channelStarts = oneAtATime ? new SemaphoreSlim(1, 1) : new SemaphoreSlim(MaxChannels, MaxChannels);
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
    /// Runs a shell command line. Commands go to long-lived shells on the connection (at most
    /// <see cref="MaxParallelCommands"/> busy at once, started as parallel callers need them and
    /// reused), which spares each command a channel and a new shell in the guest (under TCG that
    /// is most of its cost). A caller that cancels stops waiting; the command runs to its end in
    /// the guest and its shell then serves the next caller.
    /// </summary>
    public async Task<ExecResult> RunAsync(string commandLine, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_idle.TryPop(out var shell)) shell = await StartShellAsync(cancellationToken).ConfigureAwait(false);
            if (shell is null) return await OnChannelOfItsOwnAsync(_ => RunOnChannelAsync(commandLine), cancellationToken).ConfigureAwait(false);
            return await RunOnShellAsync(shell, commandLine).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    // Runs on to the end also when its caller stopped waiting, then gives the shell back.
    private async Task<ExecResult> RunOnShellAsync(ResidentShell shell, string commandLine)
    {
        ExecResult result;
        try
        {
            result = await shell.RunAsync(commandLine, OutputLimit).ConfigureAwait(false);
        }
        catch (ResidentShellEndedException e) when (e.NeverRan)
        {
            // The server turned the shell's channel down: the command never ran, so it runs on
            // a channel of its own instead; the next command tries a new shell.
            Discard(shell);
            return await OnChannelOfItsOwnAsync(_ => RunOnChannelAsync(commandLine), CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            // The shell's channel ended: its process is gone, so closing it races nothing.
            Discard(shell);
            throw;
        }
        GiveBack(shell);
        return result;
    }

    private async Task<ResidentShell?> StartShellAsync(CancellationToken cancellationToken)
    {
        await TakeChannelAndStartLockAsync(cancellationToken).ConfigureAwait(false);
        // SSH.NET waits for the open and exec replies on the calling thread, without a token.
        var starting = Task.Run(StartShell, CancellationToken.None);
        _ = starting.ContinueWith(
            started =>
            {
                _channelStarts.Release();
                if (!started.IsCompletedSuccessfully || started.Result is null) _channels.Release();
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        try
        {
            return await starting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _ = starting.ContinueWith(
                started =>
                {
                    if (started.IsCompletedSuccessfully && started.Result is { } shell) GiveBack(shell);
                },
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            throw;
        }
    }

    private ResidentShell? StartShell()
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

    private void GiveBack(ResidentShell shell)
    {
        if (_disposed)
        {
            shell.Dispose();
        }
        else if (_idle.Count < MaxParallelCommands)
        {
            _idle.Push(shell);
        }
        else
        {
            // A shell that finished an abandoned command while others took over: one too many.
            // Its process exits when it is closed, so no channel may start until it is gone.
            _ = Task.Run(async () =>
            {
                await _channelStarts.WaitAsync().ConfigureAwait(false);
                try
                {
                    await shell.CloseAsync(TimeLimits.SshChannelRequest).ConfigureAwait(false);
                }
                finally
                {
                    _channelStarts.Release();
                    _channels.Release();
                }
            });
        }
    }

    private void Discard(ResidentShell shell)
    {
        shell.Dispose();
        _channels.Release();
    }

    // A channel's place and the start lock, both or neither.
    private async Task TakeChannelAndStartLockAsync(CancellationToken cancellationToken)
    {
        await TakeChannelAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Held by a channel of its own until it closed, which a hung guest may never do.
            if (!await _channelStarts.WaitAsync(TimeLimits.SshChannelRequest, cancellationToken).ConfigureAwait(false))
                throw new LinuxKitException($"No SSH channel could start within {TimeLimits.SshChannelRequest.TotalSeconds:0} s: another channel to the VM has not closed (is the guest hung?).");
        }
        catch
        {
            _channels.Release();
            throw;
        }
    }

    // Waits for room on the connection. Commands whose callers stopped waiting keep their
    // channels until they end; when such commands hold every channel, waiting would not help.
    private async Task TakeChannelAsync(CancellationToken cancellationToken)
    {
        if (await _channels.WaitAsync(TimeLimits.SshChannelRequest, cancellationToken).ConfigureAwait(false)) return;
        throw new LinuxKitException(
            $"All {MaxChannels} SSH channels to the VM are still taken after {TimeLimits.SshChannelRequest.TotalSeconds:0} s, " +
            "by commands whose callers cancelled them but which still run in the guest; end those commands or wait for them.");
    }

    private async Task<ExecResult> RunOnChannelAsync(string commandLine)
    {
        // Only where the server runs no resident shell (it refused one); there SSH.NET reads the
        // output whole, so the limit is checked after.
        using var command = _client.CreateCommand(commandLine);
        await command.ExecuteAsync(CancellationToken.None).ConfigureAwait(false);
        var result = new ExecResult(command.ExitStatus ?? -1, command.Result, command.Error);
        if (result.Stdout.Length > OutputLimit) throw OverOutputLimit("standard output", OutputLimit);
        if (result.Stderr.Length > OutputLimit) throw OverOutputLimit("standard error", OutputLimit);
        return result;
    }

    /// <summary>The error for a command whose <paramref name="stream"/> is over <paramref name="limit"/> bytes.</summary>
    public static LinuxKitException OverOutputLimit(string stream, long limit) =>
        new($"The command's {stream} is over the output limit of {limit} bytes (LinuxKitManagerOptions.OutputLimit). Redirect it to a file in the guest, or raise the limit.");

    /// <summary>
    /// Writes <paramref name="content"/> to a guest file through <c>cat</c> on a channel of its
    /// own: it needs nothing but a POSIX shell in the guest, where SFTP needs a server most
    /// LinuxKit images do not have. The file appears whole or not at all (written beside it,
    /// then renamed); missing parent folders are created.
    /// </summary>
    public Task<ExecResult> WriteFileAsync(string guestPath, Stream content, long length, string octalMode, string owner, CancellationToken cancellationToken)
    {
        var path = ShellQuoting.Quote(guestPath);
        // A cancelled copy still ends the guest's stdin like a finished one: the size check keeps
        // a partial file from being renamed into place.
        var sizeCheck = $"[ $(wc -c < \"$t\") -eq {length} ] || {{ echo 'incomplete copy' >&2; exit 5; }}; ";
        var script =
            $"set -e; t={path}.linuxkit-$$; trap 'rm -f \"$t\"' EXIT; " +
            $"mkdir -p -- \"$(dirname -- {path})\"; cat > \"$t\"; {sizeCheck}" +
            $"chmod {octalMode} \"$t\"; chown {owner} \"$t\"; mv -f -- \"$t\" {path}; trap - EXIT";
        return OnChannelOfItsOwnAsync(async abandoned =>
        {
            using var command = _client.CreateCommand(script);
            var running = command.ExecuteAsync(CancellationToken.None);
            try
            {
                var input = command.CreateInputStream();
                await using var inputDisposal = input.ConfigureAwait(false);
                await content.CopyToAsync(input, abandoned).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (abandoned.IsCancellationRequested)
            {
                // Stdin ends here all the same; the guest refuses the short file.
            }
            finally
            {
                // Also when reading the content failed: the channel is left to close only
                // after its process ended (see _channelStarts).
                await running.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            await running.ConfigureAwait(false);
            return new ExecResult(command.ExitStatus ?? -1, "", command.Error);
        }, cancellationToken);
    }

    /// <summary>
    /// Reads a guest file's bytes. Exit status 2 means the file does not exist, 3 that it is a
    /// folder, 4 that it is over <see cref="OutputLimit"/> (its size is on stderr), 6 that it is
    /// a device, pipe or socket.
    /// </summary>
    public Task<(int ExitCode, byte[] Content, string Error)> ReadFileAsync(string guestPath, CancellationToken cancellationToken)
    {
        var path = ShellQuoting.Quote(guestPath);
        var limit = OutputLimit.ToString(System.Globalization.CultureInfo.InvariantCulture);
        // The size is checked before anything is sent (stat: reading a file to count it could
        // wait for ever), and head bounds a file that grows meanwhile.
        var script = $"[ -e {path} ] || exit 2; [ ! -d {path} ] || exit 3; [ -f {path} ] || exit 6; n=$(stat -L -c %s -- {path}) || exit 1; " +
            $"[ \"$n\" -le {limit} ] || {{ echo \"$n\" >&2; exit 4; }}; exec head -c {limit} -- {path}";
        return OnChannelOfItsOwnAsync(async abandoned =>
        {
            using var command = _client.CreateCommand(script);
            var running = command.ExecuteAsync(CancellationToken.None);
            using var bytes = new MemoryStream();
            var chunk = new byte[64 * 1024];
            // SSH.NET's output stream does not watch a token: a cancelled read is ended by
            // cancelling the command, which closes its channel and with it the stream.
            using (abandoned.Register(() => _ = Task.Run(() => Cancel(command))))
            {
                try
                {
                    int read;
                    while ((read = await command.OutputStream.ReadAsync(chunk, CancellationToken.None).ConfigureAwait(false)) > 0) bytes.Write(chunk, 0, read);
                }
                catch (ObjectDisposedException) when (abandoned.IsCancellationRequested)
                {
                    // Closed under the read by the cancel.
                }
            }
            // The channel closes, so no other channel's start may race it: the start lock is held
            // until then.
            await running.WaitAsync(TimeLimits.SshChannelRequest, CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            abandoned.ThrowIfCancellationRequested();
            await running.ConfigureAwait(false);
            return (command.ExitStatus ?? -1, bytes.ToArray(), command.Error);
        }, cancellationToken);
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

    /// <summary>
    /// Runs <paramref name="work"/> on a channel of its own. Its process will exit, so no other
    /// channel may be starting meanwhile: the work holds the start lock until its channel has
    /// closed, also when the caller stops waiting (the work sees that through its token and
    /// winds down without closing a running channel).
    /// </summary>
    private async Task<T> OnChannelOfItsOwnAsync<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        await TakeChannelAndStartLockAsync(cancellationToken).ConfigureAwait(false);
        // On the thread pool: SSH.NET opens the channel on the calling thread, without a token.
        var running = Task.Run(() => work(cancellationToken), CancellationToken.None);
        _ = running.ContinueWith(
            _ =>
            {
                _channelStarts.Release();
                _channels.Release();
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return await running.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    // Why channel starts are guarded (seen with dropbear 2022.83, the SSH server of minimal
    // images): a session channel that is open but has not run its command yet counts as
    // finished in dropbear's close check, and any child exiting on the connection runs that
    // check. So when another channel's process exits between our channel open and exec request,
    // dropbear closes the new channel; SSH.NET then opens it again under the same number and
    // mixes the two (the command's output ends at once, or dropbear drops the connection with
    // "Unknown channel"; earlier, the exec reply never came). Hence: a channel is started only
    // while no other channel's process can exit. Resident shells exit only when closed under
    // the start lock (a cancelled command is left to finish), and channels of their own hold the
    // start lock until they close. OpenSSH has no such race: there the lock never waits.
    private readonly SemaphoreSlim _channelStarts;

    // More channels than a handful at once on one connection were seen to time out under TCG;
    // callers past the limit wait here instead, cancellably.
    private const int MaxParallelCommands = 4;
    private readonly SemaphoreSlim _slots = new(MaxParallelCommands, MaxParallelCommands);

    // Every open channel holds one: busy and idle shells, shells still running a command their
    // caller gave up on, channels of their own. Below SSH.NET's own limit of ten sessions, at
    // which it would wait for a free one without a timeout, and below OpenSSH's MaxSessions
    // (10 by default), past which sshd refuses a channel.
    private const int MaxChannels = 8;
    private readonly SemaphoreSlim _channels = new(MaxChannels, MaxChannels);

    private readonly System.Collections.Concurrent.ConcurrentStack<ResidentShell> _idle = new();
    private volatile bool _disposed;

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryPop(out var shell)) shell.Dispose();
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
