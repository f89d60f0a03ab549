using System.Collections.Concurrent;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// What this process holds for the VMs it runs, in one place: the watchdog that ends a VM with
/// its owner, the console watcher that timestamps and bounds its log, and its pooled SSH
/// connection. A VM's share is released once, whichever way it ends.
/// </summary>
internal sealed class VmRuntime : IAsyncDisposable
{
    // Every VM this manager started and still owns: a detached one is let go once it runs (its
    // entry stays, null, so that the boot knows it was here); a stopped one keeps its entry so
    // that disposing the manager removes its folder.
    private readonly ConcurrentDictionary<string, OwnerWatchdog?> _owned = new();
    private readonly ConcurrentDictionary<string, ConsoleWatcher> _watchers = new();

    public VmRuntime(SshSessionPool sessions) => Sessions = sessions;

    public SshSessionPool Sessions { get; }

    /// <summary>
    /// Starts the VM's watchdog unless it has one: one per VM, also when a failed warm start is
    /// followed by a cold boot (it finds whichever hypervisor wrote the pid file).
    /// </summary>
    public void Guard(string id, Func<OwnerWatchdog> start)
    {
        if (!_owned.ContainsKey(id)) _owned[id] = start();
    }

    /// <summary>A detached VM that runs: its watchdog lets it outlive this process.</summary>
    public void Detach(string id)
    {
        if (!_owned.TryGetValue(id, out var watchdog)) return;
        watchdog?.Release();
        _owned[id] = null;
    }

    /// <summary>The VMs this process started, does not let outlive it, and has not forgotten.</summary>
    public IReadOnlyList<string> Owned => [.. _owned.Where(o => o.Value is not null).Select(o => o.Key)];

    public void WatchConsole(string id, ConsoleWatcher watcher) => _watchers[id] = watcher;

    public bool WatchesConsole(string id) => _watchers.ContainsKey(id);

    /// <summary>When each byte of the VM's console log was seen; empty for a VM another process runs.</summary>
    public ConsoleTimeline Timeline(string id) => _watchers.TryGetValue(id, out var watcher) ? watcher.Timeline : new ConsoleTimeline();

    /// <summary>
    /// The VM ended or never ran: its connection, watchdog and console watcher go.
    /// <paramref name="forget"/> also drops it from <see cref="Owned"/>.
    /// </summary>
    public async Task ReleaseAsync(string id, bool forget)
    {
        Sessions.Close(id);
        var watchdog = forget ? (_owned.TryRemove(id, out var removed) ? removed : null) : _owned.GetValueOrDefault(id);
        watchdog?.Dispose();
        if (_watchers.TryRemove(id, out var watcher)) await watcher.DisposeAsync().ConfigureAwait(false);
    }

    public void Forget(string id) => _owned.TryRemove(id, out _);

    /// <summary>
    /// Stops a VM this process started whose folder (record, pid file) is gone, deleted under
    /// it: its watchdog still knows the hypervisor by the pid file its command line names.
    /// False when this process did not start it.
    /// </summary>
    public async Task<bool> StopOrphanedAsync(string id)
    {
        if (!_owned.TryGetValue(id, out var watchdog) || watchdog is null) return false;
        await ReleaseAsync(id, forget: true).ConfigureAwait(false);
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        Sessions.Dispose();
        foreach (var watchdog in _owned.Values) watchdog?.Dispose();
        foreach (var watcher in _watchers.Values) await watcher.DisposeAsync().ConfigureAwait(false);
        _watchers.Clear();
        _owned.Clear();
    }
}
