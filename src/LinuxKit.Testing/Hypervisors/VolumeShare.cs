namespace LinuxKit.Testing.Hypervisors;

/// <summary>A host folder shared with the guest over 9p, mounted by the guest at GuestPath.</summary>
internal readonly record struct VolumeShare(string Tag, string HostPath, string GuestPath);
