namespace LinuxKit.Testing.Networking;

/// <summary>Where forwarded ports listen and SSH connects: the host's loopback only, never every interface.</summary>
internal static class Loopback
{
    public const string Address = "127.0.0.1";
}
