using System.Globalization;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Networks;
using TcExecResult = DotNet.Testcontainers.Containers.ExecResult;

namespace LinuxKit.Testing.Testcontainers;

// The guest's side of the contract: its ports, commands, files, console and connection; each a
// mapping onto the core's IManager operations and extensions.
public sealed partial class LinuxKitContainer
{
    /// <summary>The host port of the first port binding.</summary>
    /// <exception cref="InvalidOperationException">No port binding was configured, or the VM is not started.</exception>
    public ushort GetMappedPublicPort()
    {
        if (_configuration.Options.Ports.Count == 0)
            throw new InvalidOperationException("No port binding was configured: call WithPortBinding on the builder.");
        return GetMappedPublicPort(_configuration.Options.Ports[0].GuestPort);
    }

    /// <summary>The host port on 127.0.0.1 that reaches <paramref name="containerPort"/> in the guest (22 is SSH).</summary>
    /// <exception cref="InvalidOperationException">The port is not published, or the VM is not started.</exception>
    public ushort GetMappedPublicPort(int containerPort)
    {
        var ports = GetMappedPublicPorts();
        return ports.TryGetValue((ushort)containerPort, out var host)
            ? host
            : throw new InvalidOperationException(
                $"Guest port {containerPort} is not published; published: {string.Join(", ", ports.Keys)}. Add WithPortBinding({containerPort}, assignRandomHostPort: true) to the builder.");
    }

    /// <summary>As <see cref="GetMappedPublicPort(int)"/>, for "80" or "80/tcp" (only TCP is forwarded).</summary>
    public ushort GetMappedPublicPort(string containerPort)
    {
        ArgumentException.ThrowIfNullOrEmpty(containerPort);
        return GetMappedPublicPort(DockerPorts.ParseTcp(containerPort));
    }

    /// <summary>Guest port to host port, for every published port and SSH (guest port 22).</summary>
    /// <exception cref="InvalidOperationException">The VM is not started.</exception>
    public IReadOnlyDictionary<ushort, ushort> GetMappedPublicPorts() =>
        RequireStarted().HostPortsByGuestPort().ToDictionary(p => (ushort)p.Key, p => (ushort)p.Value);

    /// <summary>
    /// Waits until the VM has stopped and returns how it ended: 0 when the guest powered off (by
    /// itself, or on <see cref="StopAsync"/> with <see cref="LinuxKitBuilder.WithGracefulStop"/>),
    /// 137 when <see cref="StopAsync"/> ended it at once (the default) or it had to be killed, 143
    /// when it had to be terminated, -1 when it ended without a trace (crashed, or killed from outside).
    /// </summary>
    public async Task<long> GetExitCodeAsync(CancellationToken ct = default) =>
        (await _manager.WaitForExitAsync(RequireStarted().Id, ct).ConfigureAwait(false)).ExitCode ?? -1;

    /// <summary>
    /// The serial console written from <paramref name="since"/> up to <paramref name="until"/>
    /// (default: all) as stdout; stderr is empty (a serial console has one stream). A line's
    /// time is when it appeared in the console log, within 0.1 s; with
    /// <paramref name="timestampsEnabled"/> each line starts with it, as Docker writes it.
    /// </summary>
    public async Task<(string Stdout, string Stderr)> GetLogsAsync(DateTime since = default, DateTime until = default, bool timestampsEnabled = true, CancellationToken ct = default)
    {
        var lines = await _manager.ReadConsoleAsync(RequireStarted().Id, DockerLogs.Bound(since), DockerLogs.Bound(until), ct).ConfigureAwait(false);
        return (DockerLogs.Format(lines, timestampsEnabled), "");
    }

    /// <summary>Not supported: a VM is not attached to Docker networks.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Task ConnectAsync(string network, CancellationToken ct = default) => throw new NotSupportedException(NoDockerNetworks);

    /// <summary>Not supported: a VM is not attached to Docker networks.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public Task ConnectAsync(INetwork network, CancellationToken ct = default) => throw new NotSupportedException(NoDockerNetworks);

    /// <summary>Writes a file in the guest over SSH (only a POSIX shell is needed there); parent folders are created.</summary>
    public Task CopyAsync(byte[] fileContent, string filePath, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default) =>
        _manager.WriteFileAsync(RequireStarted().Id, filePath, fileContent, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct);

    /// <summary>Copies a host file (keeping its name) or a folder's contents, recursively, into the guest folder <paramref name="target"/>.</summary>
    /// <exception cref="FileNotFoundException"><paramref name="source"/> does not exist.</exception>
    public Task CopyAsync(string source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default) =>
        _manager.CopyIntoAsync(RequireStarted().Id, source, target, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct);

    /// <summary>Copies the contents of a host folder, recursively, into the guest folder <paramref name="target"/>.</summary>
    public Task CopyAsync(DirectoryInfo source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default) =>
        _manager.CopyFolderAsync(RequireStarted().Id, (source ?? throw new ArgumentNullException(nameof(source))).FullName, target, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct);

    /// <summary>Copies a host file into the guest folder <paramref name="target"/>, keeping its name.</summary>
    public Task CopyAsync(FileInfo source, string target, uint uid = 0, uint gid = 0, UnixFileModes fileMode = Unix.FileMode644, CancellationToken ct = default) =>
        _manager.CopyIntoAsync(RequireStarted().Id, (source ?? throw new ArgumentNullException(nameof(source))).FullName, target, (UnixFileMode)fileMode, checked((int)uid), checked((int)gid), ct);

    /// <summary>Reads a guest file over SSH (no SFTP server needed).</summary>
    /// <exception cref="FileNotFoundException">There is no such file in the guest.</exception>
    public Task<byte[]> ReadFileAsync(string filePath, CancellationToken ct = default) =>
        _manager.ReadFileAsync(RequireStarted().Id, filePath, ct);

    /// <summary>Runs a command in the guest over SSH; each element reaches the program as one argument.</summary>
    public async Task<TcExecResult> ExecAsync(IList<string> command, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(command);
        var result = await _manager.ExecAsync(RequireStarted().Id, command.ToList(), ct).ConfigureAwait(false);
        return new TcExecResult(result.Stdout, result.Stderr, result.ExitCode);
    }

    /// <summary>
    /// An SSH URL for the VM (<c>ssh://root@127.0.0.1:PORT</c>); use it with the key the VM was
    /// given. Only <see cref="ConnectionMode.Host"/> has a meaning for a VM.
    /// </summary>
    public string GetConnectionString(ConnectionMode connectionMode = ConnectionMode.Host)
    {
        if (connectionMode != ConnectionMode.Host)
            throw new NotSupportedException("A LinuxKit VM is reached from the host only (ConnectionMode.Host): it is on no container network.");
        var vm = RequireStarted();
        return string.Create(CultureInfo.InvariantCulture, $"ssh://{vm.SshUser}@{Hostname}:{vm.SshPort}");
    }

    /// <summary>Not supported: a LinuxKit VM has no named connection strings.</summary>
    /// <exception cref="NotSupportedException">Always.</exception>
    public string GetConnectionString(string name, ConnectionMode connectionMode = ConnectionMode.Host) =>
        throw new NotSupportedException($"A LinuxKit VM has no connection string named '{name}'; GetConnectionString() gives its SSH URL.");

    /// <summary>The private key file the VM accepts for SSH.</summary>
    public string SshKeyFile => RequireStarted().SshKeyFile;
}
