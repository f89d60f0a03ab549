using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;

namespace LinuxKit.Testing.Tests.Templates;

public sealed class TemplateStoreTests : IDisposable
{
    private const string Key = "0123456789abcdef";
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-templates-");
    private readonly TemplateStore _store;

    public TemplateStoreTests() => _store = new TemplateStore(_dir.FullName);

    public void Dispose() => _dir.Delete(recursive: true);

    // What making a template leaves in its staging folder: RAM (sparse), device state, console.
    private TemplateFiles Staged(string key = Key, int memoryMb = 64)
    {
        var staging = _store.Stage(key);
        using (var memory = File.Create(staging.Memory))
        {
            memory.SetLength(memoryMb * 1024L * 1024L);
            memory.Write(new byte[4096]);
        }
        File.WriteAllBytes(staging.State, new byte[1000]);
        File.WriteAllText(staging.Vm("x").ConsoleLog, "Welcome to LinuxKit\n");
        return staging;
    }

    private static Template Describe(string key = Key, int memoryMb = 64, IReadOnlyList<string>? inputs = null) => new()
    {
        Key = key,
        Image = "os.iso",
        Memory = memoryMb,
        Cpus = 1,
        CreatedAt = DateTimeOffset.UtcNow,
        HostKeyFingerprint = "SHA256:abc",
        StateLength = 1000,
        Inputs = inputs ?? [],
    };

    [Fact]
    public void A_committed_template_is_found_with_its_files()
    {
        var committed = _store.Commit(Staged(), Describe());
        var found = _store.Find(Key, out var reason);
        Assert.Null(reason);
        Assert.NotNull(found);
        Assert.Equal(Path.Combine(_dir.FullName, Key), found.Files.Directory);
        Assert.Equal(committed.Files.State, found.Files.State);
        Assert.True(File.Exists(found.Files.Memory));
    }

    [Fact]
    public void A_template_being_made_is_not_found()
    {
        Staged();
        Assert.Null(_store.Find(Key, out var reason));
        Assert.Null(reason);
        Assert.Empty(_store.List());
    }

    [Fact]
    public void A_damaged_state_file_is_refused_with_the_reason_and_the_template_removed()
    {
        var template = _store.Commit(Staged(), Describe());
        File.WriteAllBytes(template.Files.State, new byte[10]);
        Assert.Null(_store.Find(Key, out var reason));
        Assert.Contains("device state", reason, StringComparison.Ordinal);
        Assert.False(Directory.Exists(template.Files.Directory));
    }

    [Fact]
    public void A_memory_file_of_the_wrong_size_is_refused()
    {
        var template = _store.Commit(Staged(), Describe());
        using (var memory = File.OpenWrite(template.Files.Memory)) memory.SetLength(1024);
        Assert.Null(_store.Find(Key, out var reason));
        Assert.Contains("memory file", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreadable_record_is_refused()
    {
        var template = _store.Commit(Staged(), Describe());
        File.WriteAllText(template.Files.Record, "{ not json");
        Assert.Null(_store.Find(Key, out var reason));
        Assert.Contains("record", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void The_listing_gives_the_space_the_sparse_memory_file_takes_not_its_length()
    {
        _store.Commit(Staged(memoryMb: 64), Describe(memoryMb: 64));
        var (template, size, _) = Assert.Single(_store.List());
        Assert.Equal(Key, template.Key);
        Assert.InRange(size, 1000, 8L * 1024 * 1024); // 64 MB long, a few KB written
    }

    [Fact]
    public void Prune_removes_stale_templates_and_keeps_current_ones()
    {
        const string other = "fedcba9876543210";
        var image = Path.Combine(_dir.FullName, "os.iso");
        File.WriteAllText(image, "iso");
        _store.Commit(Staged(), Describe(inputs: [TemplateKey.Fingerprint(image)]));
        var current = Path.Combine(_dir.FullName, "other.iso");
        File.WriteAllText(current, "iso");
        _store.Commit(Staged(other), Describe(other, inputs: [TemplateKey.Fingerprint(current)]));
        File.WriteAllText(image, "iso, rebuilt");

        Assert.Equal([Key], _store.Prune(dryRun: true));
        Assert.Equal(2, _store.List().Count); // a dry run removes nothing
        var removed = _store.Prune();
        Assert.Equal([Key], removed);
        Assert.Equal([other], _store.List().Select(t => t.Template.Key));
    }

    [Fact]
    public void Prune_removes_templates_unused_for_the_limit_and_abandoned_staging_folders()
    {
        var template = _store.Commit(Staged(), Describe());
        Directory.SetLastWriteTimeUtc(template.Files.Directory, DateTime.UtcNow - TemplateStore.UnusedLimit - TimeSpan.FromDays(1));
        var abandoned = Staged("fedcba9876543210");
        Directory.SetLastWriteTimeUtc(abandoned.Directory, DateTime.UtcNow - TimeSpan.FromHours(2));
        var fresh = Staged("1111111111111111");

        Assert.Equal([Key], _store.Prune());
        Assert.False(Directory.Exists(abandoned.Directory));
        Assert.True(Directory.Exists(fresh.Directory)); // its maker may still be at work
    }

    [Fact]
    public async Task The_lock_of_a_key_is_held_by_one_holder_at_a_time()
    {
        using var first = await _store.LockAsync(Key, TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.NotNull(first);
        using var second = await _store.LockAsync(Key, TimeSpan.FromMilliseconds(200), CancellationToken.None);
        Assert.Null(second);
        first.Dispose();
        using var third = await _store.LockAsync(Key, TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.NotNull(third);
    }

    [Fact]
    public void Remove_refuses_what_is_not_a_key()
    {
        var error = Assert.Throws<LinuxKitException>(() => _store.Remove("../vms"));
        Assert.Contains("not a warm-start template key", error.Message, StringComparison.Ordinal);
    }
}
