using System.Collections.Concurrent;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// One SSH connection per VM, shared by concurrent callers: a command on an open connection
/// costs a channel, not a handshake. A failed connect is not kept; a connection found dropped
/// before an operation is replaced, but an operation that failed once started is never sent
/// again (a command that ran must not run twice): its error says it may have run.
/// </summary>
internal sealed class SshSessionPool : IDisposable
{
    private const int ConnectAttempts = 6;

    private readonly ConcurrentDictionary<string, Task<SshSession>> _sessions = new();
    private readonly TimeProvider _time;
    private readonly long _outputLimit;

    public SshSessionPool(TimeProvider? time = null, long outputLimit = LinuxKitManagerOptions.DefaultOutputLimit)
    {
        _time = time ?? TimeProvider.System;
        _outputLimit = outputLimit;
    }

    /// <summary>Hands the pool a connection opened elsewhere (the one readiness proved).</summary>
    public void Add(string vmId, SshSession session)
    {
        session.OutputLimit = _outputLimit;
        _sessions[vmId] = Task.FromResult(session);
    }

    /// <summary>The VM as reached over this pool.</summary>
    public GuestConnection For(string vmId, SshEndpoint endpoint, string? pinnedFingerprint) => new(this, vmId, endpoint, pinnedFingerprint);

    /// <summary>Closes the VM's connection, if one is open.</summary>
    public void Close(string vmId)
    {
        if (_sessions.TryRemove(vmId, out var session) && session.IsCompletedSuccessfully) session.Result.Dispose();
    }

    public void Dispose()
    {
        foreach (var vmId in _sessions.Keys) Close(vmId);
    }

    internal async Task<T> UseAsync<T>(GuestConnection guest, Func<SshSession, Task<T>> operation, CancellationToken cancellationToken)
    {
        var session = await SessionAsync(guest, cancellationToken).ConfigureAwait(false);
        if (!session.IsConnected)
        {
            // Dropped since its last use (the guest restarted sshd, a network hiccup): nothing
            // was sent on it yet, so a fresh connection is safe.
            Forget(guest.VmId, session);
            session = await SessionAsync(guest, cancellationToken).ConfigureAwait(false);
        }
        try
        {
            return await operation(session).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SshException or ObjectDisposedException or InvalidOperationException or IOException or System.Net.Sockets.SocketException)
        {
            Forget(guest.VmId, session);
            throw new LinuxKitException(
                $"The SSH connection to VM {guest.VmId} broke during the operation ({e.Message}); it may or may not have run in the guest, so it was not sent again. The next call connects afresh.", e);
        }
    }

    // Drops a connection from the pool; only this one, since another caller may already have
    // replaced it.
    private void Forget(string vmId, SshSession session)
    {
        if (_sessions.TryGetValue(vmId, out var current) && current.IsCompletedSuccessfully && ReferenceEquals(current.Result, session))
            _sessions.TryRemove(new KeyValuePair<string, Task<SshSession>>(vmId, current));
        session.Dispose();
    }

    private async Task<SshSession> SessionAsync(GuestConnection guest, CancellationToken cancellationToken)
    {
        var connecting = _sessions.GetOrAdd(guest.VmId, _ => ConnectWithRetriesAsync(guest.Endpoint, guest.PinnedFingerprint));
        try
        {
            return await connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _sessions.TryRemove(new KeyValuePair<string, Task<SshSession>>(guest.VmId, connecting));
            throw new LinuxKitException($"Cannot connect to VM {guest.VmId} over SSH on {guest.Endpoint.Host}:{guest.Endpoint.Port}: {e.Message}", e);
        }
    }

    // A connection can be dropped before the SSH banner: QEMU's user network delivers
    // connections it queued while the guest booted (the readiness probes'), and dropbear turns
    // away new clients while too many are unauthenticated. That passes within a second or two;
    // a wrong key or host key does not, and is not retried. Shared by every caller, so no
    // caller's token may end it.
    private async Task<SshSession> ConnectWithRetriesAsync(SshEndpoint endpoint, string? pinnedFingerprint)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var session = await SshSession.ConnectAsync(endpoint, pinnedFingerprint, TimeLimits.SshConnect, CancellationToken.None).ConfigureAwait(false);
                session.OutputLimit = _outputLimit;
                return session;
            }
            catch (Exception e) when (attempt < ConnectAttempts && e is SshConnectionException or System.Net.Sockets.SocketException or SshOperationTimeoutException)
            {
                await Task.Delay(delay, _time).ConfigureAwait(false);
                delay *= 2;
            }
        }
    }
}
