using System.Collections.Concurrent;

namespace LinuxKit.Testing.Ssh;

/// <summary>A long-lived shell on a channel that runs one command at a time (<see cref="ResidentShell"/>).</summary>
internal interface ICommandShell : IDisposable
{
    /// <summary>Runs one command to its end; no token, because a running shell is never abandoned mid-command.</summary>
    Task<ExecResult> RunAsync(ShellCommand command, long outputLimit);

    /// <summary>Ends the shell and waits until its channel has closed.</summary>
    Task CloseAsync(TimeSpan timeout);
}

/// <summary>
/// Decides when work may use a channel of one SSH connection: commands go to pooled resident
/// shells (at most <see cref="MaxParallelCommands"/> busy at once), file copies to channels of
/// their own, and no channel ever starts while another channel's process may exit, on servers
/// where that breaks the start (dropbear; the reason is at <see cref="_channelStarts"/>). Knows
/// nothing of SSH itself: the connection supplies how a shell starts.
/// </summary>
internal sealed class ChannelScheduler : IDisposable
{
    // More channels than a handful at once on one connection were seen to time out under TCG;
    // callers past the limit wait here instead, cancellably.
    public const int MaxParallelCommands = 4;

    // Every open channel holds one: busy and idle shells, shells still running a command their
    // caller gave up on, channels of their own. Below SSH.NET's own limit of ten sessions, at
    // which it would wait for a free one without a timeout, and below OpenSSH's MaxSessions
    // (10 by default), past which sshd refuses a channel.
    public const int MaxChannels = 8;

    private readonly Func<ICommandShell?> _startShell;
    private readonly TimeSpan _wait;

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
    private readonly SemaphoreSlim _slots = new(MaxParallelCommands, MaxParallelCommands);
    private readonly SemaphoreSlim _channels = new(MaxChannels, MaxChannels);
    private readonly ConcurrentStack<ICommandShell> _idle = new();
    private volatile bool _disposed;

    /// <param name="startShell">Starts a shell on a new channel (blocking, as SSH.NET does); null when the server runs none.</param>
    /// <param name="oneStartAtATime">True for servers whose channel starts race exiting processes (dropbear).</param>
    /// <param name="wait">How long a caller waits for a channel or for the start lock before it is told why not.</param>
    public ChannelScheduler(Func<ICommandShell?> startShell, bool oneStartAtATime, TimeSpan wait)
    {
        _startShell = startShell;
        _wait = wait;
        _channelStarts = oneStartAtATime ? new SemaphoreSlim(1, 1) : new SemaphoreSlim(MaxChannels, MaxChannels);
    }

    /// <summary>Shells started and waiting for a command.</summary>
    public int IdleShells => _idle.Count;

    /// <summary>
    /// Runs a command on an idle or new resident shell; where the server runs none, on a channel
    /// of its own through <paramref name="onChannelOfItsOwn"/>. A caller that cancels stops
    /// waiting; the command runs to its end in the guest and its shell then serves the next caller.
    /// </summary>
    public async Task<ExecResult> RunAsync(ShellCommand command, long outputLimit, Func<Task<ExecResult>> onChannelOfItsOwn, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_idle.TryPop(out var shell)) shell = await StartShellAsync(cancellationToken).ConfigureAwait(false);
            if (shell is null) return await OnChannelOfItsOwnAsync(_ => onChannelOfItsOwn(), cancellationToken).ConfigureAwait(false);
            return await RunOnShellAsync(shell, command, outputLimit, onChannelOfItsOwn).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a channel of its own. Its process will exit, so no other
    /// channel may be starting meanwhile: the work holds the start lock until its channel has
    /// closed, also when the caller stops waiting (the work sees that through its token and
    /// winds down without closing a running channel).
    /// </summary>
    public async Task<T> OnChannelOfItsOwnAsync<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
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

    // Runs on to the end also when its caller stopped waiting, then gives the shell back.
    private async Task<ExecResult> RunOnShellAsync(ICommandShell shell, ShellCommand command, long outputLimit, Func<Task<ExecResult>> onChannelOfItsOwn)
    {
        ExecResult result;
        try
        {
            result = await shell.RunAsync(command, outputLimit).ConfigureAwait(false);
        }
        catch (ResidentShellEndedException e) when (e.NeverRan)
        {
            // The server turned the shell's channel down: the command never ran, so it runs on
            // a channel of its own instead; the next command tries a new shell.
            Discard(shell);
            return await OnChannelOfItsOwnAsync(_ => onChannelOfItsOwn(), CancellationToken.None).ConfigureAwait(false);
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

    private async Task<ICommandShell?> StartShellAsync(CancellationToken cancellationToken)
    {
        await TakeChannelAndStartLockAsync(cancellationToken).ConfigureAwait(false);
        // SSH.NET waits for the open and exec replies on the calling thread, without a token.
        var starting = Task.Run(_startShell, CancellationToken.None);
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

    private void GiveBack(ICommandShell shell)
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
                    await shell.CloseAsync(_wait).ConfigureAwait(false);
                }
                finally
                {
                    _channelStarts.Release();
                    _channels.Release();
                }
            });
        }
    }

    private void Discard(ICommandShell shell)
    {
        shell.Dispose();
        _channels.Release();
    }

    // A channel's place and the start lock, both or neither.
    private async Task TakeChannelAndStartLockAsync(CancellationToken cancellationToken)
    {
        // Commands whose callers stopped waiting keep their channels until they end; when such
        // commands hold every channel, waiting longer would not help.
        if (!await _channels.WaitAsync(_wait, cancellationToken).ConfigureAwait(false))
        {
            throw new LinuxKitException(
                $"All {MaxChannels} SSH channels to the VM are still taken after {_wait.TotalSeconds:0} s, " +
                "by commands whose callers cancelled them but which still run in the guest; end those commands or wait for them.");
        }
        try
        {
            // Held by a channel of its own until it closed, which a hung guest may never do.
            if (!await _channelStarts.WaitAsync(_wait, cancellationToken).ConfigureAwait(false))
                throw new LinuxKitException($"No SSH channel could start within {_wait.TotalSeconds:0} s: another channel to the VM has not closed (is the guest hung?).");
        }
        catch
        {
            _channels.Release();
            throw;
        }
    }

    /// <summary>Disposes the idle shells; shells and channels still running end with the connection.</summary>
    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryPop(out var shell)) shell.Dispose();
    }
}
