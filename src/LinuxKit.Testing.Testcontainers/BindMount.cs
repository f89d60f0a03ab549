namespace LinuxKit.Testing.Testcontainers;

/// <summary>A folder on the host shared with the guest over 9p.</summary>
/// <param name="HostPath">The host folder.</param>
/// <param name="GuestPath">Where the guest mounts it.</param>
public sealed record BindMount(string HostPath, string GuestPath);
