using System.Collections.Concurrent;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// One SSH connection per VM, shared by concurrent callers: a command on an open connection
/// costs a channel, not a handshake. A failed connect is not kept, and a connection that dropped
/// under an operation is replaced once.
/// </summary>
internal sealed class SshSessionPool : IDisposable
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private const int ConnectAttempts = 6;

    private readonly ConcurrentDictionary<string, Task<SshSession>> _sessions = new();
    private readonly TimeProvider _time;

    public SshSessionPool(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Hands the pool a connection opened elsewhere (the one readiness proved).</summary>
    public void Add(string vmId, SshSession session) => _sessions[vmId] = Task.FromResult(session);

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
        for (var attempt = 1; ; attempt++)
        {
            var session = await SessionAsync(guest, cancellationToken).ConfigureAwait(false);
            try
            {
                return await operation(session).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt == 1 && e is SshConnectionException or ObjectDisposedException or InvalidOperationException or IOException)
            {
                // The guest restarted sshd, or the network hiccuped: one fresh connection.
                // Only this connection goes: another caller may already have replaced it.
                if (_sessions.TryGetValue(guest.VmId, out var current) && current.IsCompletedSuccessfully && ReferenceEquals(current.Result, session))
                    _sessions.TryRemove(new KeyValuePair<string, Task<SshSession>>(guest.VmId, current));
                session.Dispose();
            }
        }
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
                return await SshSession.ConnectAsync(endpoint, pinnedFingerprint, ConnectTimeout, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (attempt < ConnectAttempts && e is SshConnectionException or System.Net.Sockets.SocketException or SshOperationTimeoutException)
            {
                await Task.Delay(delay, _time).ConfigureAwait(false);
                delay *= 2;
            }
        }
    }
}
