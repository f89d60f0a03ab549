using LinuxKit.Testing.Processes;
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
        var staging = _store.Stage(key, TimeSpan.FromMinutes(2));
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
        // A folder that names no maker (left between its creation and the maker file's).
        var abandoned = Staged("fedcba9876543210");
        File.Delete(Path.Combine(abandoned.Directory, "maker"));
        Directory.SetLastWriteTimeUtc(abandoned.Directory, DateTime.UtcNow - TimeSpan.FromMinutes(10));
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
    public void Over_the_size_limit_the_least_recently_used_go_first_and_the_one_just_made_stays()
    {
        foreach (var (key, hoursAgo) in new (string, int)[] { ("aaaaaaaaaaaaaaaa", 3), ("bbbbbbbbbbbbbbbb", 1), ("cccccccccccccccc", 2) })
        {
            var template = _store.Commit(Staged(key), Describe(key));
            Directory.SetLastWriteTimeUtc(template.Files.Directory, DateTime.UtcNow - TimeSpan.FromHours(hoursAgo));
        }
        var sizes = _store.List().ToDictionary(t => t.Template.Key, t => t.Size);

        // Room for b and c: the oldest (a) goes; c, older than b, is kept because it was just made.
        var removed = _store.Prune(sizeLimit: sizes["bbbbbbbbbbbbbbbb"] + sizes["cccccccccccccccc"], keep: "cccccccccccccccc");

        Assert.Equal(["aaaaaaaaaaaaaaaa"], removed);
        Assert.Equal(["bbbbbbbbbbbbbbbb", "cccccccccccccccc"], _store.List().Select(t => t.Template.Key));
    }

    [Fact]
    public async Task A_template_whose_lock_is_held_is_neither_pruned_nor_removed()
    {
        var template = _store.Commit(Staged(), Describe(inputs: ["/gone 1 1 1"]));
        using (var maker = await _store.LockAsync(Key, TimeSpan.FromSeconds(1), CancellationToken.None))
        {
            Assert.Empty(_store.Prune());
            Assert.False(await _store.RemoveWhenFreeAsync(Key, TimeSpan.FromMilliseconds(200), CancellationToken.None));
            Assert.True(Directory.Exists(template.Files.Directory));
        }
        Assert.True(await _store.RemoveWhenFreeAsync(Key, TimeSpan.FromSeconds(1), CancellationToken.None));
        Assert.False(Directory.Exists(template.Files.Directory));
    }

    private static TemplateFailure Failed(string key = Key, IReadOnlyList<string>? inputs = null, DateTimeOffset? at = null) => new()
    {
        Key = key,
        Image = "/images/os.iso",
        Memory = 256,
        Cpus = 1,
        Reason = "the guest refused the clone step",
        FailedAt = at ?? DateTimeOffset.UtcNow,
        Inputs = inputs ?? [],
    };

    [Fact]
    public void A_failure_is_remembered_with_its_image_and_reason_and_listed_until_the_key_is_removed()
    {
        Assert.Null(_store.FailureOf(Key));
        _store.MarkFailed(Failed());

        var failure = _store.FailureOf(Key);
        Assert.Equal("the guest refused the clone step", failure?.Reason);
        Assert.Equal("/images/os.iso", failure?.Image);
        Assert.Equal(Key, Assert.Single(_store.Failures()).Key);
        Assert.Empty(_store.List()); // a failure has no template files

        _store.Remove(Key);
        Assert.Null(_store.FailureOf(Key));
        Assert.Empty(_store.Failures());
    }

    [Fact]
    public void A_damaged_failure_record_still_skips_its_key_and_says_why()
    {
        File.WriteAllText(Path.Combine(_dir.FullName, Key + ".failed"), "not json");

        Assert.Contains("cannot be read", _store.FailureOf(Key)?.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_failure_whose_image_changed_or_that_is_old_is_pruned_and_a_current_one_stays()
    {
        var image = Path.Combine(_dir.FullName, "os.iso");
        File.WriteAllText(image, "v1");
        const string Stale = "1111111111111111", Old = "2222222222222222";
        _store.MarkFailed(Failed(Stale, [TemplateKey.Fingerprint(image)]));
        _store.MarkFailed(Failed(Old, at: DateTimeOffset.UtcNow - TemplateStore.UnusedLimit - TimeSpan.FromDays(1)));
        _store.MarkFailed(Failed());
        File.WriteAllText(image, "v2, longer");

        Assert.Equal([Stale, Old], _store.Prune().Order(StringComparer.Ordinal));

        Assert.Equal(Key, Assert.Single(_store.Failures()).Key);
    }

    [Fact]
    public void A_staging_folder_whose_maker_is_gone_is_pruned_at_once()
    {
        var staging = Staged();
        File.WriteAllText(Path.Combine(staging.Directory, "maker"), "2147483646 99999999999 1");
        _store.Prune();
        Assert.False(Directory.Exists(staging.Directory));

        var ours = Staged();
        _store.Prune();
        Assert.True(Directory.Exists(ours.Directory)); // this process makes it
    }

    [Fact]
    public void A_staging_folder_is_pruned_once_its_makers_boot_timeout_and_save_allowance_are_past_even_if_the_maker_lives()
    {
        var longBoot = _store.Stage(Key, TimeSpan.FromHours(2));
        var maker = File.ReadAllText(Path.Combine(longBoot.Directory, "maker")).Split('\n', 2);
        var given = maker[0].Split(' ');
        Assert.InRange(long.Parse(given[1], System.Globalization.CultureInfo.InvariantCulture) - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 2 * 3600, 2 * 3600 + 600);
        _store.Prune();
        Assert.True(Directory.Exists(longBoot.Directory)); // two hours to boot: not abandoned after 30 minutes

        File.WriteAllText(Path.Combine(longBoot.Directory, "maker"), $"{given[0]} {DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 1} {given[2]}\n{maker[1]}");
        _store.Prune();
        Assert.False(Directory.Exists(longBoot.Directory));
    }

    private static readonly HostIdentity OtherMachine =
        HostIdentity.Current with { Machine = "fedcba9876543210fedcba9876543210", Name = "build-agent-7" };

    [Fact]
    public void Templates_and_failures_made_on_another_machine_are_never_pruned_though_their_inputs_are_not_here()
    {
        // On that machine the image exists; here its path names nothing.
        _store.Commit(Staged(), Describe(inputs: ["/only/on/that/machine.iso 1 1 1"]) with { MadeOn = OtherMachine });
        _store.MarkFailed(new TemplateFailure
        {
            Key = "1111111111111111", Image = "x.iso", Memory = 64, Cpus = 1, Reason = "refused", FailedAt = DateTimeOffset.UtcNow,
            Inputs = ["/only/on/that/machine.iso 1 1 1"], MadeOn = OtherMachine,
        });

        Assert.Empty(_store.Prune(sizeLimit: 0));

        Assert.NotNull(_store.Find(Key, out _));
        Assert.Contains("build-agent-7", _store.MadeElsewhere(Key), StringComparison.Ordinal);
        Assert.Contains("build-agent-7", _store.MadeElsewhere("1111111111111111"), StringComparison.Ordinal);
        Assert.Null(_store.MadeElsewhere("2222222222222222"));
    }

    [Fact]
    public void A_staging_folder_made_on_another_machine_stays_until_its_makers_deadline_though_its_pid_is_no_process_here()
    {
        var staging = Staged();
        var deadline = DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 600;
        var foreignMaker = System.Text.Json.JsonSerializer.Serialize(OtherMachine);
        File.WriteAllText(Path.Combine(staging.Directory, "maker"), $"2147483646 {deadline} 1\n{foreignMaker}");
        _store.Prune();
        Assert.True(Directory.Exists(staging.Directory));

        File.WriteAllText(Path.Combine(staging.Directory, "maker"), $"2147483646 {DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 1} 1\n{foreignMaker}");
        _store.Prune();
        Assert.False(Directory.Exists(staging.Directory));
    }

    [Fact]
    public void Remove_refuses_what_is_not_a_key()
    {
        var error = Assert.Throws<LinuxKitException>(() => _store.Remove("../vms"));
        Assert.Contains("not a warm-start template key", error.Message, StringComparison.Ordinal);
    }
}
