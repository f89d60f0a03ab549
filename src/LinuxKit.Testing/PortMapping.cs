namespace LinuxKit.Testing;

/// <summary>A host port forwarded to a guest TCP port.</summary>
/// <param name="HostPort">The port on 127.0.0.1; 0 picks a free one.</param>
/// <param name="GuestPort">The port in the VM.</param>
public readonly record struct PortMapping(int HostPort, int GuestPort);
