namespace LinuxKit.Testing;

/// <summary>The state of a VM.</summary>
public enum ContainerStatus
{
    /// <summary>The hypervisor runs; the VM has not answered over SSH yet.</summary>
    Starting,

    /// <summary>The hypervisor runs and the VM answered over SSH.</summary>
    Running,

    /// <summary>The VM was stopped, or its hypervisor exited.</summary>
    Stopped,

    /// <summary>The VM failed to boot or to stop.</summary>
    Error,
}
