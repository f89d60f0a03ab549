using System.Security.Cryptography;
using System.Text.Json;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// Warm-start templates under the state directory (<c>templates/KEY/</c>). A template is made in
/// a staging folder and renamed into place with its record written last, so a folder named like
/// a key is complete; a process killed while making one leaves only a staging folder, which
/// nothing reads and <see cref="Prune"/> removes. One lock file per key makes a template be made
/// once when several processes want it at once.
/// </summary>
internal sealed class TemplateStore
{
    private const string StagingMarker = ".partial-";

    private static readonly TimeSpan LockRetry = TimeSpan.FromMilliseconds(50);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public TemplateStore(string root) => Root = root;

    /// <summary>The templates' folder (made by the caller, private like the rest of the state directory).</summary>
    public string Root { get; }

    /// <summary>Templates not used for this long are removed by <see cref="Prune"/>.</summary>
    public static TimeSpan UnusedLimit { get; } = TimeSpan.FromDays(14);

    /// <summary>
    /// The template for <paramref name="key"/>, or null with the reason when there is none or it
    /// does not check out (a damaged one is removed).
    /// </summary>
    public Template? Find(string key, out string? reason)
    {
        var files = new TemplateFiles(Path.Combine(Root, key));
        Template? template;
        try
        {
            template = JsonSerializer.Deserialize<Template>(File.ReadAllText(files.Record), Json);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            reason = null;
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return Reject(key, $"its record cannot be read ({e.Message})", out reason);
        }
        if (template is null || template.Key != key) return Reject(key, "its record names another template", out reason);
        if (!IsWhole(template)) return Reject(key, "its record holds null where a value is required", out reason);
        template = template with { Files = files };
        var state = new FileInfo(files.State);
        if (!state.Exists || state.Length != template.StateLength)
            return Reject(key, $"its device state {files.State} is missing or not the length it was saved with", out reason);
        var memory = new FileInfo(files.Memory);
        if (!memory.Exists || memory.Length != template.Memory * 1024L * 1024L)
            return Reject(key, $"its memory file {files.Memory} is missing or not {template.Memory} MB", out reason);
        // The folder's time says when it was last used, for Prune (a folder removed meanwhile is
        // found missing by the clone, which then boots cold).
        try { Directory.SetLastWriteTimeUtc(files.Directory, DateTime.UtcNow); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        reason = null;
        return template;
    }

    private Template? Reject(string key, string why, out string reason)
    {
        reason = $"warm-start template {key} is not used: {why}; it was removed";
        Remove(key);
        return null;
    }

    /// <summary>
    /// Holds the lock for <paramref name="key"/> (across processes); null when another process
    /// holds it longer than <paramref name="timeout"/>.
    /// </summary>
    public async Task<IDisposable?> LockAsync(string key, TimeSpan timeout, CancellationToken cancellationToken) =>
        await LockFile.AcquireAsync(Path.Combine(Root, key + ".lock"), LockRetry, timeout, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// A new private staging folder for the template <paramref name="key"/>, naming this process
    /// as its maker, which boots it within <paramref name="bootTimeout"/>.
    /// </summary>
    public TemplateFiles Stage(string key, TimeSpan bootTimeout)
    {
        var folder = Path.Combine(Root, key + StagingMarker + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant());
        PrivateFiles.CreateFolder(folder);
        if (ProcessIdentity.Of(Environment.ProcessId) is { } self)
        {
            var givenUpAt = (DateTimeOffset.UtcNow + bootTimeout + TimeLimits.TemplateSave).ToUnixTimeSeconds();
            using var maker = new StreamWriter(PrivateFiles.CreateNew(Path.Combine(folder, MakerFile)));
            maker.Write(FormattableString.Invariant($"{self.Pid} {givenUpAt} {self.StartTime}\n"));
            maker.Write(JsonSerializer.Serialize(HostIdentity.Current, Json));
        }
        return new TemplateFiles(folder);
    }

    // The process that makes a staged template and when it gives up: once it is gone (its
    // watchdog normally removes the folder too) or past that, nothing will finish the folder.
    private const string MakerFile = "maker";

    private static bool IsAbandoned(string staging)
    {
        string[] parts;
        HostIdentity? host;
        try
        {
            var lines = File.ReadAllText(Path.Combine(staging, MakerFile)).Split('\n', 2);
            parts = lines[0].Split(' ', 3);
            host = lines.Length > 1 ? JsonSerializer.Deserialize<HostIdentity>(lines[1], Json) : null;
        }
        catch (JsonException)
        {
            return DateTime.UtcNow - Directory.GetLastWriteTimeUtc(staging) > TimeLimits.UnnamedStaging;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return DateTime.UtcNow - Directory.GetLastWriteTimeUtc(staging) > TimeLimits.UnnamedStaging;
        }
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        if (parts.Length != 3 || !int.TryParse(parts[0], invariant, out var pid) || !long.TryParse(parts[1], invariant, out var givenUpAt))
            return DateTime.UtcNow - Directory.GetLastWriteTimeUtc(staging) > TimeLimits.UnnamedStaging;
        if (DateTimeOffset.UtcNow.ToUnixTimeSeconds() > givenUpAt) return true;
        // A maker elsewhere cannot be looked up here: its own deadline is all there is.
        return HostIdentity.Elsewhere(host, HostIdentity.Current) is null && !new ProcessIdentity(pid, parts[2]).IsAlive();
    }

    /// <summary>Writes the record into the staging folder and moves the folder into place. Call under the key's lock.</summary>
    public Template Commit(TemplateFiles staging, Template template)
    {
        // Every file on disk before the record that declares them complete: after a crash a
        // record never stands beside a RAM file or state that was still in the page cache.
        foreach (var written in Directory.EnumerateFiles(staging.Directory, "*", SearchOption.AllDirectories))
        {
            FileStream file;
            try { file = new FileStream(written, FileMode.Open, FileAccess.ReadWrite); }
            catch (IOException) { continue; } // a socket or pipe: no data of its own
            using (file) file.Flush(flushToDisk: true);
        }
        using (var file = PrivateFiles.CreateNew(staging.Record))
        {
            JsonSerializer.Serialize(file, template, Json);
            file.Flush(flushToDisk: true);
        }
        var final = Path.Combine(Root, template.Key);
        Remove(template.Key);
        Directory.Move(staging.Directory, final);
        return template with { Files = new TemplateFiles(final) };
    }

    /// <summary>Removes a template; clones running from it keep their open files.</summary>
    public void Remove(string key)
    {
        if (!TemplateKey.IsKey(key)) throw new LinuxKitException($"'{key}' is not a warm-start template key (16 lowercase hex characters).");
        RemoveFolder(Path.Combine(Root, key));
        File.Delete(FailurePath(key));
    }

    // A key whose template could not serve a VM (a step only warm start has failed on this
    // guest): later VMs of that key boot cold at once instead of paying for the attempt again,
    // until the image or options change (another key) or the key is removed.
    private string FailurePath(string key) => Path.Combine(Root, key + ".failed");

    /// <summary>Remembers that a template failed, and why.</summary>
    public void MarkFailed(TemplateFailure failure)
    {
        try
        {
            var path = FailurePath(failure.Key);
            var temp = path + "." + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)) + ".tmp";
            using (var file = PrivateFiles.CreateNew(temp)) JsonSerializer.Serialize(file, failure, Json);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a shortcut: the next VM tries again.
        }
    }

    /// <summary>Why the template <paramref name="key"/> failed before, or null when it did not.</summary>
    public TemplateFailure? FailureOf(string key) => ReadFailure(FailurePath(key));

    /// <summary>Every remembered failure.</summary>
    public IReadOnlyList<TemplateFailure> Failures() =>
        Directory.Exists(Root)
            ? Directory.EnumerateFiles(Root, "*.failed").Order(StringComparer.Ordinal).Select(ReadFailure).OfType<TemplateFailure>().ToList()
            : [];

    private static TemplateFailure? ReadFailure(string path)
    {
        try
        {
            var failure = JsonSerializer.Deserialize<TemplateFailure>(File.ReadAllText(path), Json);
            // JSON may say null where the type says none can be.
            return failure is { Key: not null, Image: not null, Reason: not null, Inputs: not null } && failure.Inputs.All(i => i is not null)
                ? failure
                : throw new JsonException("it holds null where a value is required");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            // Unreadable is still a failure: the key stays skipped until the entry is removed.
            var key = Path.GetFileNameWithoutExtension(path);
            return new TemplateFailure { Key = key, Image = "", Memory = 0, Cpus = 0, Reason = $"its record {path} cannot be read ({e.Message})", FailedAt = File.GetLastWriteTimeUtc(path) };
        }
    }

    // Renamed aside first, so no reader finds a half-removed template.
    private static void RemoveFolder(string folder)
    {
        if (!Directory.Exists(folder)) return;
        var aside = folder + StagingMarker + "removed-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        try
        {
            Directory.Move(folder, aside);
            Directory.Delete(aside, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Removed by another process meanwhile.
        }
    }

    /// <summary>Every complete template, with its size on disk.</summary>
    // JSON may say null where the type says none can be: such a record is not used.
    private static bool IsWhole(Template template) =>
        template is { Image: not null, HostKeyFingerprint: not null, Inputs: not null } && template.Inputs.All(i => i is not null);

    public IReadOnlyList<(Template Template, long Size, DateTimeOffset LastUsed)> List()
    {
        var found = new List<(Template, long, DateTimeOffset)>();
        if (!Directory.Exists(Root)) return found;
        foreach (var folder in Directory.EnumerateDirectories(Root).Order(StringComparer.Ordinal))
        {
            var key = Path.GetFileName(folder);
            if (!TemplateKey.IsKey(key)) continue;
            try
            {
                var files = new TemplateFiles(folder);
                var template = JsonSerializer.Deserialize<Template>(File.ReadAllText(files.Record), Json);
                if (template is null || !IsWhole(template)) continue;
                var size = Directory.EnumerateFiles(folder).Sum(DiskUsage.Of);
                found.Add((template with { Files = files }, size, Directory.GetLastWriteTimeUtc(folder)));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
            {
                // Being made, removed, or damaged: Find removes a damaged one when it is wanted.
            }
        }
        return found;
    }

    /// <summary>
    /// Removes what no run will use: templates whose image or hypervisor changed
    /// (<see cref="TemplateKey.IsCurrent"/> fails for one of their inputs), templates unused for
    /// <see cref="UnusedLimit"/>, the least recently used beyond <paramref name="sizeLimit"/>
    /// bytes in all (never <paramref name="keep"/>), failures that no longer match their image,
    /// and staging folders whose maker is gone or past its boot timeout; never what was made on
    /// another machine or in another PID namespace;
    /// a template whose lock another process holds stays. Returns the keys removed; with
    /// <paramref name="dryRun"/>, the keys it would remove, removing nothing.
    /// </summary>
    public IReadOnlyList<string> Prune(bool dryRun = false, long sizeLimit = long.MaxValue, string? keep = null)
    {
        var removed = new List<string>();
        if (!Directory.Exists(Root)) return removed;
        var kept = new List<(string Key, long Size, DateTimeOffset LastUsed)>();
        foreach (var (template, size, lastUsed) in List())
        {
            // Its inputs are files on the machine that made it; a VM there may be restoring from it.
            if (IsElsewhere(template.MadeOn)) continue;
            if (template.Inputs.Any(i => !TemplateKey.IsCurrent(i)) || DateTimeOffset.UtcNow - lastUsed > UnusedLimit)
            {
                if (dryRun || TryRemoveFree(template.Key)) removed.Add(template.Key);
            }
            else
            {
                kept.Add((template.Key, size, lastUsed));
            }
        }
        // Over the size limit: the least recently used go first, never the one to keep.
        var total = kept.Sum(t => t.Size);
        foreach (var (key, size, _) in kept.Where(t => t.Key != keep).OrderBy(t => t.LastUsed))
        {
            if (total <= sizeLimit) break;
            if (dryRun || TryRemoveFree(key))
            {
                removed.Add(key);
                total -= size;
            }
        }
        // A failure whose image or hypervisor changed names a key no VM will have again.
        foreach (var failure in Failures().Where(f => !IsElsewhere(f.MadeOn)).Where(f => f.Inputs.Any(i => !TemplateKey.IsCurrent(i)) || DateTimeOffset.UtcNow - f.FailedAt > UnusedLimit))
        {
            if (!dryRun) File.Delete(FailurePath(failure.Key));
            removed.Add(failure.Key);
        }
        if (dryRun) return removed;
        foreach (var folder in Directory.EnumerateDirectories(Root).Where(f => Path.GetFileName(f).Contains(StagingMarker, StringComparison.Ordinal)))
        {
            if (IsAbandoned(folder))
            {
                try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        return removed;
    }

    private static bool IsElsewhere(HostIdentity? madeOn) => HostIdentity.Elsewhere(madeOn, HostIdentity.Current) is not null;

    /// <summary>Where the template or failure <paramref name="key"/> was made when that is another machine or PID namespace; else null.</summary>
    public string? MadeElsewhere(string key)
    {
        if (!TemplateKey.IsKey(key)) return null;
        Template? template = null;
        try
        {
            template = JsonSerializer.Deserialize<Template>(File.ReadAllText(new TemplateFiles(Path.Combine(Root, key)).Record), Json);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            // None, or unreadable: then the failure entry, if any, says.
        }
        return HostIdentity.Elsewhere(template?.MadeOn ?? FailureOf(key)?.MadeOn, HostIdentity.Current);
    }

    /// <summary>
    /// Removes the template <paramref name="key"/> once no process holds its lock (one that is
    /// making it, or replacing it), waiting at most <paramref name="timeout"/>; false when the
    /// lock stayed taken.
    /// </summary>
    public async Task<bool> RemoveWhenFreeAsync(string key, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!TemplateKey.IsKey(key)) throw new LinuxKitException($"'{key}' is not a warm-start template key (16 lowercase hex characters).");
        using var held = await LockAsync(key, timeout, cancellationToken).ConfigureAwait(false);
        if (held is null) return false;
        Remove(key);
        return true;
    }

    // Prune leaves a template whose lock is taken alone: its maker is replacing it.
    private bool TryRemoveFree(string key)
    {
        using var held = LockFile.TryAcquire(Path.Combine(Root, key + ".lock"));
        if (held is null) return false;
        Remove(key);
        return true;
    }
}
