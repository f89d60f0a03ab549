namespace LinuxKit.Testing.Ssh;

/// <summary>A running VM as reached over its pooled SSH connection.</summary>
internal readonly record struct GuestConnection(SshSessionPool Pool, string VmId, SshEndpoint Endpoint, string? PinnedFingerprint)
{
    /// <summary>Runs <paramref name="operation"/> on the VM's connection, connecting first if none is open.</summary>
    public Task<T> UseAsync<T>(Func<SshSession, Task<T>> operation, CancellationToken cancellationToken) =>
        Pool.UseAsync(this, operation, cancellationToken);
}
