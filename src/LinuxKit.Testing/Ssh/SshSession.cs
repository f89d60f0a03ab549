using Renci.SshNet;
using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>Where and as whom to reach a VM's SSH server.</summary>
internal sealed record SshEndpoint(string Host, int Port, string User, string PrivateKeyPath);

/// <summary>
/// One SSH connection to a VM, reused by every command (a command on an open connection costs
/// a channel, not a handshake). The host key seen first is pinned: a different key later is
/// refused, not trusted.
/// </summary>
internal sealed class SshSession : IDisposable
{
    private readonly SshClient _client;

    private SshSession(SshClient client, string hostKeyFingerprint)
    {
        _client = client;
        HostKeyFingerprint = hostKeyFingerprint;
    }

    /// <summary>The SHA-256 fingerprint of the server's host key.</summary>
    public string HostKeyFingerprint { get; }

    public bool IsConnected => _client.IsConnected;

    /// <summary>
    /// Connects and authenticates. With <paramref name="pinnedFingerprint"/> the server must show
    /// that host key; without, the key it shows is pinned from now on.
    /// </summary>
    public static async Task<SshSession> ConnectAsync(SshEndpoint endpoint, string? pinnedFingerprint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        PrivateKeyFile key;
        try
        {
            key = new PrivateKeyFile(endpoint.PrivateKeyPath);
        }
        catch (Exception e) when (e is IOException or SshException or UnauthorizedAccessException or ArgumentException)
        {
            throw new LinuxKitException($"SSH key '{endpoint.PrivateKeyPath}' cannot be loaded: {e.Message}", e);
        }
        var info = new PrivateKeyConnectionInfo(endpoint.Host, endpoint.Port, endpoint.User, key) { Timeout = timeout };
        var client = new SshClient(info);
        string? seen = null;
        client.HostKeyReceived += (_, e) =>
        {
            seen = e.FingerPrintSHA256;
            e.CanTrust = pinnedFingerprint is null || string.Equals(pinnedFingerprint, seen, StringComparison.Ordinal);
        };
        try
        {
            await client.ConnectAsync(cancellationToken);
            return new SshSession(client, seen!);
        }
        catch (SshConnectionException) when (pinnedFingerprint is not null && seen is not null && seen != pinnedFingerprint)
        {
            client.Dispose();
            throw new LinuxKitException(
                $"The SSH server on {endpoint.Host}:{endpoint.Port} shows host key {seen}, not the key {pinnedFingerprint} it showed at boot; refusing to connect.");
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public async Task<ExecResult> RunAsync(string commandLine, CancellationToken cancellationToken)
    {
        using var command = _client.CreateCommand(commandLine);
        await command.ExecuteAsync(cancellationToken);
        return new ExecResult(command.ExitStatus ?? -1, command.Result, command.Error);
    }

    public void Dispose() => _client.Dispose();
}
