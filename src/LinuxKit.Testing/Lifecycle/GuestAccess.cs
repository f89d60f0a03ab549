using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>A running VM over its pooled SSH connection, pinned to the host key seen at boot.</summary>
internal sealed class GuestAccess(VmRegistry registry, VmRuntime runtime)
{
    /// <exception cref="LinuxKitException">The VM is not running, or its record has no host-key pin.</exception>
    public GuestConnection For(string id)
    {
        var record = registry.Find(id);
        record.RequireHere("used");
        if (record.Status != ContainerStatus.Running || !record.Process.IsAlive())
            throw new LinuxKitException($"VM {record.Id} is not running (status {registry.Refresh(record).Status}); start it before running commands in it.");
        // Without the host key seen at boot anyone on the port would be trusted.
        if (string.IsNullOrEmpty(record.HostKeyFingerprint))
            throw new LinuxKitException($"VM {record.Id}'s record has no host-key pin, so its SSH server cannot be told from another on port {record.SshPort}; it is refused. Stop the VM and start it again.");
        return runtime.Sessions.For(record.Id, new SshEndpoint(Loopback.Address, record.SshPort, record.SshUser, record.SshKeyFile), record.HostKeyFingerprint);
    }
}
