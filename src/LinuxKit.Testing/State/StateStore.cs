using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LinuxKit.Testing.State;

/// <summary>
/// VM records on disk, one folder per VM (<c>vms/ID/vm.json</c> beside its console log, keys and
/// overlay), so that any process can list, use and stop VMs another process started.
/// Changes happen under a lock file that every process honours; a record is replaced by
/// writing a temporary file and renaming it over the old one, so a reader never sees half a
/// record. A damaged record is an error, never silently replaced.
/// </summary>
internal sealed class StateStore
{
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan LockRetry = TimeSpan.FromMilliseconds(15);

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };

    public StateStore(string root)
    {
        Root = Path.GetFullPath(root);
        try
        {
            Directory.CreateDirectory(VmsDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LinuxKitException($"State directory '{Root}' cannot be created: {e.Message}. Set LinuxKitManagerOptions.StateDirectory or LINUXKIT_TESTING_HOME to a writable folder.", e);
        }
    }

    public string Root { get; }

    private string VmsDirectory => Path.Combine(Root, "vms");

    public string VmDirectory(string id) => Path.Combine(VmsDirectory, id);

    /// <summary>The files of a VM's folder.</summary>
    public VmFiles Files(string id) => new(id, VmDirectory(id));

    /// <summary>Holds the store's lock (across processes) while <paramref name="action"/> runs.</summary>
    public async Task<T> LockedAsync<T>(Func<T> action, CancellationToken cancellationToken)
    {
        var path = Path.Combine(Root, "state.lock");
        FileStream? held = null;
        if (!await Polling.UntilAsync(() => (held = TryTakeLock(path)) is not null, LockRetry, LockTimeout, cancellationToken).ConfigureAwait(false))
            throw new LinuxKitException($"State lock '{path}' is held by another process for more than {LockTimeout.TotalSeconds:0} s.");
        using (held)
        {
            return action();
        }
    }

    // FileShare.None takes an exclusive flock(2) on Unix: null while another process holds it.
    private static FileStream? TryTakeLock(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
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

    public VmRecord? Load(string id)
    {
        var path = Files(id).Record;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<VmRecord>(text, Json)
                ?? throw new JsonException("the file holds null");
        }
        catch (JsonException e)
        {
            throw new LinuxKitException(
                $"State file '{path}' is damaged ({e.Message}). It was left as it is: stop the VM's process by hand if it still runs, then delete '{VmDirectory(id)}'.", e);
        }
    }

    public IReadOnlyList<VmRecord> LoadAll()
    {
        var records = new List<VmRecord>();
        foreach (var dir in Directory.EnumerateDirectories(VmsDirectory).Order(StringComparer.Ordinal))
        {
            // A folder without a record is a VM being created (or a failed one being removed).
            if (Load(Path.GetFileName(dir)) is { } record) records.Add(record);
        }
        return records;
    }

    public void Save(VmRecord record)
    {
        var files = Files(record.Id);
        Directory.CreateDirectory(files.Directory);
        var path = files.Record;
        var temp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, Json));
        File.Move(temp, path, overwrite: true); // rename(2): atomic on one file system
    }

    public void Delete(string id)
    {
        var dir = VmDirectory(id);
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }
}
