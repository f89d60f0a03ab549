namespace LinuxKit.Testing.Ssh;

/// <summary>Where and as whom to reach a VM's SSH server.</summary>
internal sealed record SshEndpoint(string Host, int Port, string User, string PrivateKeyPath);
