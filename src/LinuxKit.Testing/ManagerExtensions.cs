namespace LinuxKit.Testing;

/// <summary>
/// What adapters over <see cref="IManager"/> need beyond its operations, built from them once
/// here so that every adapter (Testcontainers, fixtures, the tool) behaves the same.
/// </summary>
public static class ManagerExtensions
{
    private static readonly TimeSpan ExitPoll = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Waits until the VM is neither running nor starting (powered off by itself, stopped, or
    /// died) and returns it as it then is; <see cref="Container.ExitCode"/> says how it ended.
    /// </summary>
    /// <exception cref="LinuxKitException">There is no such VM.</exception>
    public static async Task<Container> WaitForExitAsync(this IManager manager, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        while (true)
        {
            var vm = await manager.InspectAsync(id, cancellationToken).ConfigureAwait(false);
            if (!vm.Status.IsLive()) return vm;
            await Task.Delay(ExitPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Copies a host file, or a host folder's contents recursively, into <paramref name="guestFolder"/>:
    /// a file keeps its name there.
    /// </summary>
    /// <exception cref="FileNotFoundException"><paramref name="hostPath"/> does not exist.</exception>
    /// <exception cref="LinuxKitException">The guest refused a folder or a file.</exception>
    public static async Task CopyIntoAsync(this IManager manager, string id, string hostPath, string guestFolder, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        ArgumentException.ThrowIfNullOrEmpty(hostPath);
        if (Directory.Exists(hostPath))
        {
            await manager.CopyFolderAsync(id, hostPath, guestFolder, mode, ownerId, groupId, cancellationToken).ConfigureAwait(false);
            return;
        }
        if (!File.Exists(hostPath)) throw new FileNotFoundException($"Cannot copy '{hostPath}' into VM {id}: there is no such file or folder on the host.", hostPath);
        var content = File.OpenRead(hostPath);
        await using var contentDisposal = content.ConfigureAwait(false);
        await manager.WriteFileAsync(id, GuestPath(guestFolder, Path.GetFileName(hostPath)), content, mode, ownerId, groupId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes <paramref name="content"/> as a guest file, whole or not at all; parent folders are created.</summary>
    /// <exception cref="LinuxKitException">The guest refused the file.</exception>
    public static async Task WriteFileAsync(this IManager manager, string id, string guestPath, byte[] content, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        using var stream = new MemoryStream(content, writable: false);
        await manager.WriteFileAsync(id, guestPath, stream, mode, ownerId, groupId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Copies a host folder's contents, recursively, into <paramref name="guestFolder"/> (made
    /// with its missing parents); each file lands whole or not at all, with <paramref name="mode"/>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="hostFolder"/> does not exist.</exception>
    /// <exception cref="LinuxKitException">The guest refused a folder or a file.</exception>
    public static async Task CopyFolderAsync(this IManager manager, string id, string hostFolder, string guestFolder, UnixFileMode mode, int ownerId = 0, int groupId = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        var source = new DirectoryInfo(hostFolder);
        if (!source.Exists) throw new DirectoryNotFoundException($"Cannot copy '{source.FullName}' into VM {id}: there is no such folder on the host.");
        var folders = source.EnumerateDirectories("*", SearchOption.AllDirectories)
            .Select(d => GuestPath(guestFolder, Path.GetRelativePath(source.FullName, d.FullName)))
            .Prepend(guestFolder)
            .ToList();
        // One command for all folders: under TCG each command costs milliseconds.
        var made = await manager.ExecAsync(id, ["mkdir", "-p", "--", .. folders], cancellationToken).ConfigureAwait(false);
        if (made.ExitCode != 0) throw new LinuxKitException($"Cannot create '{guestFolder}' in VM {id}: {made.Stderr.Trim()}");
        foreach (var file in source.EnumerateFiles("*", SearchOption.AllDirectories))
        {
            var content = file.OpenRead();
            await using var contentDisposal = content.ConfigureAwait(false);
            var guestPath = GuestPath(guestFolder, Path.GetRelativePath(source.FullName, file.FullName));
            await manager.WriteFileAsync(id, guestPath, content, mode, ownerId, groupId, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The guest's first network interface as the guest reports it; empty strings for what a
    /// minimal image cannot say (no <c>ip</c> command). Under QEMU's user-mode network the
    /// address is reachable only from inside the guest.
    /// </summary>
    public static async Task<GuestNetwork> ReadGuestNetworkAsync(this IManager manager, string id, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        const string Script = "for i in /sys/class/net/*; do [ \"${i##*/}\" = lo ] || { cat \"$i/address\"; ip -4 -o addr show dev \"${i##*/}\" 2>/dev/null; break; }; done";
        var result = await manager.ExecAsync(id, ["sh", "-c", Script], cancellationToken).ConfigureAwait(false);
        var lines = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var inet = lines.Skip(1).SelectMany(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).SkipWhile(w => w != "inet").Skip(1).FirstOrDefault();
        return new GuestNetwork(lines.FirstOrDefault() ?? "", inet?.Split('/')[0] ?? "");
    }

    /// <summary>The console's last <paramref name="lines"/> lines, as put in error messages; empty when there is no such VM.</summary>
    public static async Task<string> ReadConsoleTailAsync(this IManager manager, string id, int lines = 30, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(manager);
        try
        {
            var console = await manager.ReadConsoleAsync(id, cancellationToken: cancellationToken).ConfigureAwait(false);
            return string.Join('\n', console.TakeLast(lines).Select(l => l.Text));
        }
        catch (LinuxKitException)
        {
            return "";
        }
    }

    private static string GuestPath(string folder, string relative) =>
        folder.TrimEnd('/') + "/" + relative.Replace(Path.DirectorySeparatorChar, '/');
}
