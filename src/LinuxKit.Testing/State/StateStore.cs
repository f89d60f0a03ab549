using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace LinuxKit.Testing.State;

/// <summary>
/// VM records on disk, one folder per VM (<c>vms/ID/vm.json</c> beside its console log, keys and
/// overlay), so that any process can list, use and stop VMs another process started.
/// Changes happen under a lock file that every process honours; a record is replaced by
/// writing a temporary file and renaming it over the old one, so a reader never sees half a
/// record. The folder is the current user's alone (0700, files 0600), and a record is trusted
/// only as far as it checks out: its id is its folder's name, its files lie in its folder. A
/// record that does not check out is listed as <see cref="ContainerStatus.Error"/> with the
/// reason, never silently replaced, and never breaks the others.
/// </summary>
internal sealed partial class StateStore
{
    private static readonly TimeSpan LockRetry = TimeSpan.FromMilliseconds(15);

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public StateStore(string root)
    {
        Root = Path.GetFullPath(root);
        var fix = $"Set LinuxKitManagerOptions.StateDirectory or {LinuxKitEnvironment.StateDirectory} to a folder of your own, or fix this one (chown to you, chmod 700).";
        foreach (var folder in new[] { Root, VmsDirectory })
        {
            try
            {
                if (Directory.Exists(folder) || File.Exists(folder))
                {
                    if (PrivateFiles.Distrust(folder) is { } reason)
                        throw new LinuxKitException($"State directory '{folder}' is refused: {reason}. Another user could plant VM records there that make the SDK signal processes or delete files. {fix}");
                    // The VMs' folder is the SDK's own (made before folders were private): made
                    // private. A root the user chose keeps its mode; what it holds is private.
                    if (folder == VmsDirectory) PrivateFiles.MakePrivate(folder);
                }
                else
                {
                    PrivateFiles.CreateFolder(folder);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new LinuxKitException($"State directory '{folder}' cannot be created or secured: {e.Message}. {fix}", e);
            }
        }
    }

    public string Root { get; }

    private string VmsDirectory => Path.Combine(Root, "vms");

    /// <summary>Folders the SDK keeps beside the VMs: port reservations, copy spools.</summary>
    public string Scratch(string name)
    {
        var folder = Path.Combine(Root, name);
        PrivateFiles.CreateFolder(folder);
        return folder;
    }

    public string VmDirectory(string id) => Path.Combine(VmsDirectory, RequireId(id));

    /// <summary>The files of a VM's folder.</summary>
    public VmFiles Files(string id) => new(id, VmDirectory(id));

    /// <summary>True for what <see cref="NewId"/> makes: the only names a VM folder may have.</summary>
    public static bool IsId(string text) => IdPattern().IsMatch(text);

    [GeneratedRegex("^[0-9a-f]{8}$")]
    private static partial Regex IdPattern();

    private static string RequireId(string id) =>
        IsId(id) ? id : throw new LinuxKitException($"'{id}' is not a VM id (8 lowercase hex characters).");

    /// <summary>Holds the store's lock (across processes) while <paramref name="action"/> runs.</summary>
    public async Task<T> LockedAsync<T>(Func<T> action, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Root, "state.lock");
        var held = await LockFile.AcquireAsync(path, LockRetry, TimeLimits.StateLock, cancellationToken).ConfigureAwait(false)
            ?? throw new LinuxKitException($"State lock '{path}' is held by another process for more than {TimeLimits.StateLock.TotalSeconds:0} s.");
        using (held)
        {
            return action();
        }
    }

    public Task LockedAsync(Action action, CancellationToken cancellationToken) =>
        LockedAsync(() => { action(); return 0; }, cancellationToken);

    /// <summary>A new id: 8 hex characters, unique among the VMs in this store. Call under the lock.</summary>
    public string NewId()
    {
        while (true)
        {
            var id = Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
            if (!Directory.Exists(VmDirectory(id))) return id;
        }
    }

    /// <summary>
    /// The record of VM <paramref name="id"/>: null when there is none (or the text is no id),
    /// an <see cref="ContainerStatus.Error"/> record with <see cref="VmRecord.Damage"/> when it
    /// cannot be read or does not check out.
    /// </summary>
    public VmRecord? Load(string id)
    {
        if (!IsId(id)) return null;
        var files = Files(id);
        string text;
        try
        {
            text = File.ReadAllText(files.Record);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Damaged(files, $"it cannot be read: {e.Message}");
        }
        VmRecord? record;
        try
        {
            record = JsonSerializer.Deserialize<VmRecord>(text, Json);
        }
        catch (JsonException e)
        {
            return Damaged(files, $"it is not a VM record ({e.Message})");
        }
        if (record is null) return Damaged(files, "it holds null");
        if (record.Id != id) return Damaged(files, $"it names id '{record.Id}', not its folder's");
        // JSON may say null where the type says none can be: nothing later would expect it.
        if (record.Image is null || record.SshUser is null || record.SshKeyFile is null || record.Ports is null || record.Volumes is null
            || record.RuntimeFiles is null || record.RuntimeFiles.Any(f => f is null) || record.Volumes.Values.Any(v => v is null))
            return Damaged(files, "it holds null where a value is required");
        if (record.RuntimeFiles.FirstOrDefault(f => !IsInside(f, files.Directory)) is { } outside)
            return Damaged(files, $"it names file '{outside.Replace("\0", "\\0", StringComparison.Ordinal)}' outside the VM's folder");
        return record with { Files = files };
    }

    // A record that does not check out is kept for the user to see and remove; nothing in it is
    // used.
    private static VmRecord Damaged(VmFiles files, string reason) => new()
    {
        Id = files.Id,
        Image = "",
        Format = Images.ImageFormat.Unknown,
        Hypervisor = Hypervisors.HypervisorKind.Auto,
        Status = ContainerStatus.Error,
        SshUser = "",
        SshKeyFile = "",
        Damage = $"State file '{files.Record}' is not trusted: {reason}. Nothing in it was used; stop the VM to remove its folder.",
        Files = files,
    };

    private static bool IsInside(string path, string folder)
    {
        // A NUL names no file (and Path refuses it).
        if (path.Length == 0 || path.Contains('\0', StringComparison.Ordinal)) return false;
        var full = Path.GetFullPath(path);
        return full.StartsWith(folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    /// <summary>Every VM folder's record, damaged ones included (as errors).</summary>
    public IReadOnlyList<VmRecord> LoadAll()
    {
        var records = new List<VmRecord>();
        foreach (var dir in Directory.EnumerateDirectories(VmsDirectory).Order(StringComparer.Ordinal))
        {
            // A folder not named like an id is none of the SDK's; a folder without a record is
            // a VM being created (or a failed one being removed).
            if (Load(Path.GetFileName(dir)) is { } record) records.Add(record);
        }
        return records;
    }

    public void Save(VmRecord record)
    {
        var files = Files(record.Id);
        PrivateFiles.CreateFolder(files.Directory);
        var path = files.Record;
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var file = PrivateFiles.CreateNew(temp))
            {
                JsonSerializer.Serialize(file, record, Json);
                file.Flush(flushToDisk: true); // a crash after the rename must not leave an empty record
            }
            File.Move(temp, path, overwrite: true); // rename(2): atomic on one file system
        }
        catch (IOException e)
        {
            // A full disk: the old record stays whole, and no half-written one is left beside it.
            try { File.Delete(temp); } catch (IOException) { }
            throw new LinuxKitException($"Cannot save VM {record.Id}'s record in '{files.Directory}': {e.Message}. Free space in the state directory ('{Root}').", e);
        }
    }

    /// <summary>
    /// Saves <paramref name="record"/> only if the stored one still has <paramref name="expected"/>
    /// status; false when another process changed it meanwhile (a stop during a boot). Call under
    /// the lock.
    /// </summary>
    public bool SaveIf(VmRecord record, ContainerStatus expected)
    {
        if (Load(record.Id)?.Status != expected) return false;
        Save(record);
        return true;
    }

    public void Delete(string id)
    {
        var dir = VmDirectory(id);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }
}
