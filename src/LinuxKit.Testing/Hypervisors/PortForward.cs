namespace LinuxKit.Testing.Hypervisors;

/// <summary>A host port forwarded (on 127.0.0.1 only) to a guest TCP port.</summary>
internal readonly record struct PortForward(int HostPort, int GuestPort);
