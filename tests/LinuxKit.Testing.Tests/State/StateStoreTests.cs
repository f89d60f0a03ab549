using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tests.State;

public sealed class StateStoreTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-state-");

    public void Dispose() => _dir.Delete(recursive: true);

    private static VmRecord Record(string id, string? name = null) => new()
    {
        Id = id,
        Name = name,
        Image = "/images/os.qcow2",
        Format = ImageFormat.Qcow2,
        Hypervisor = HypervisorKind.Qemu,
        Status = ContainerStatus.Running,
        Pid = 1234,
        PidStartTime = "5678",
        Ports = new Dictionary<int, int> { [8080] = 80 },
        SshUser = "root",
        SshKeyFile = "/k",
        Files = new VmFiles(id, "/unused"),
    };

    [Fact]
    public void Saved_record_loads_back_equal_in_value()
    {
        var store = new StateStore(_dir.FullName);
        store.Save(Record("0000aaaa", "web"));
        var loaded = store.Load("0000aaaa")!;
        Assert.Equal("web", loaded.Name);
        Assert.Equal(80, loaded.Ports[8080]);
        Assert.Equal(ContainerStatus.Running, loaded.Status);
        Assert.Equal("5678", loaded.PidStartTime);
    }

    [Fact]
    public void Unknown_id_loads_as_null() => Assert.Null(new StateStore(_dir.FullName).Load("ffffffff"));

    [Fact]
    public void Damaged_record_loads_as_an_error_naming_the_file_and_is_left_untouched()
    {
        var store = new StateStore(_dir.FullName);
        store.Save(Record("0000bbbb"));
        store.Save(Record("0000cccc"));
        var path = Path.Combine(store.VmDirectory("0000bbbb"), "vm.json");
        File.WriteAllText(path, "{ \"Id\": \"0000bbbb\", trunc");

        var damaged = store.Load("0000bbbb")!;

        Assert.Equal(ContainerStatus.Error, damaged.Status);
        Assert.Contains(path, damaged.Damage, StringComparison.Ordinal);
        Assert.Equal("{ \"Id\": \"0000bbbb\", trunc", File.ReadAllText(path));
        Assert.Equal(["0000bbbb", "0000cccc"], store.LoadAll().Select(r => r.Id)); // the others still load
    }

    [Theory]
    [InlineData("{\"Id\": \"/etc\"}", "it names id '/etc', not its folder's")]
    [InlineData("{\"Id\": \"0000aaab\"}", "it names id '0000aaab', not its folder's")]
    [InlineData("{\"Id\": \"0000aaaa\", \"RuntimeFiles\": [\"/home/victim/important\"]}", "it names file '/home/victim/important' outside the VM's folder")]
    [InlineData("{\"Id\": \"0000aaaa\", \"RuntimeFiles\": [\"../../../x\"]}", "outside the VM's folder")]
    public void A_planted_record_that_points_outside_its_folder_is_refused(string json, string reason)
    {
        var store = new StateStore(_dir.FullName);
        var files = store.Files("0000aaaa");
        Directory.CreateDirectory(files.Directory);
        var full = json.Replace("{", "{\"Image\": \"x\", \"Format\": \"Iso\", \"Hypervisor\": \"Qemu\", \"SshUser\": \"root\", \"SshKeyFile\": \"/k\", ", StringComparison.Ordinal);
        File.WriteAllText(files.Record, full);

        var record = store.Load("0000aaaa")!;

        Assert.Equal(ContainerStatus.Error, record.Status);
        Assert.Contains(reason, record.Damage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../../etc")]
    [InlineData("/etc")]
    [InlineData("ABCDEF12")]
    public void Text_that_is_no_id_never_becomes_a_path(string text)
    {
        var store = new StateStore(_dir.FullName);
        Assert.Null(store.Load(text));
        Assert.Throws<LinuxKitException>(() => store.VmDirectory(text));
    }

    [Fact]
    public void The_state_folders_and_records_are_the_users_alone()
    {
        var store = new StateStore(Path.Combine(_dir.FullName, "state"));
        store.Save(Record("0000aaaa"));

        Assert.Equal(PrivateFiles.FolderMode, File.GetUnixFileMode(store.Root));
        Assert.Equal(PrivateFiles.FolderMode, File.GetUnixFileMode(store.VmDirectory("0000aaaa")));
        Assert.Equal(PrivateFiles.FileMode, File.GetUnixFileMode(store.Files("0000aaaa").Record));
    }

    [Fact]
    public void A_state_folder_others_can_write_to_is_refused_naming_it_and_the_fix()
    {
        var root = Directory.CreateDirectory(Path.Combine(_dir.FullName, "shared")).FullName;
        File.SetUnixFileMode(root, PrivateFiles.FolderMode | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite);

        var e = Assert.Throws<LinuxKitException>(() => new StateStore(root));

        Assert.Contains($"State directory '{root}' is refused: its group or other users can write to it", e.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 700", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_state_folder_that_is_a_symlink_is_refused()
    {
        var target = Directory.CreateDirectory(Path.Combine(_dir.FullName, "target")).FullName;
        var link = Path.Combine(_dir.FullName, "link");
        Directory.CreateSymbolicLink(link, target);

        var e = Assert.Throws<LinuxKitException>(() => new StateStore(link));

        Assert.Contains("is a symbolic link", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_owner_check_reads_the_same_owner_and_mode_the_runtime_reports()
    {
        var file = Path.Combine(_dir.FullName, "mine");
        File.WriteAllText(file, "");

        Assert.Equal(PrivateFiles.CurrentUser(), PrivateFiles.OwnerOf(file));
        Assert.Null(PrivateFiles.OwnerOf(Path.Combine(_dir.FullName, "missing")));
        Assert.Equal(0u, PrivateFiles.OwnerOf("/")); // root's
    }

    [Fact]
    public void Save_leaves_no_temporary_files()
    {
        var store = new StateStore(_dir.FullName);
        for (var i = 0; i < 5; i++) store.Save(Record("0000cccc") with { Pid = i });
        Assert.Equal(["vm.json"], Directory.GetFiles(store.VmDirectory("0000cccc")).Select(Path.GetFileName));
        Assert.Equal(4, store.Load("0000cccc")!.Pid);
    }

    [Fact]
    public void New_ids_are_eight_lowercase_hex_characters()
    {
        var id = new StateStore(_dir.FullName).NewId();
        Assert.Matches("^[0-9a-f]{8}$", id);
    }

    [Fact]
    public async Task Concurrent_writers_under_the_lock_lose_no_update()
    {
        // Two stores on one folder stand for two processes; each increments a counter record
        // read-modify-write under the lock. Without mutual exclusion updates would be lost.
        var a = new StateStore(_dir.FullName);
        var b = new StateStore(_dir.FullName);
        a.Save(Record("0000dddd") with { Pid = 0 });
        const int perWriter = 100;
        async Task Writer(StateStore store)
        {
            for (var i = 0; i < perWriter; i++)
            {
                await store.LockedAsync(() =>
                {
                    var current = store.Load("0000dddd")!;
                    store.Save(current with { Pid = current.Pid + 1 });
                }, CancellationToken.None);
            }
        }
        await Task.WhenAll(Task.Run(() => Writer(a)), Task.Run(() => Writer(b)), Task.Run(() => Writer(a)));
        Assert.Equal(3 * perWriter, a.Load("0000dddd")!.Pid);
    }

    [Fact]
    public async Task Concurrent_readers_never_see_a_half_written_record()
    {
        var store = new StateStore(_dir.FullName);
        store.Save(Record("0000eeee"));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        var writer = Task.Run(() =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested) store.Save(Record("0000eeee") with { Pid = i++, Name = new string('n', i % 500) });
        });
        var reads = 0;
        while (!stop.IsCancellationRequested)
        {
            Assert.NotNull(store.Load("0000eeee"));
            reads++;
        }
        await writer;
        Assert.True(reads > 0);
    }

    [Fact]
    public void Unwritable_state_directory_is_reported_with_the_setting_to_change()
    {
        var file = Path.Combine(_dir.FullName, "a-file");
        File.WriteAllText(file, "");
        var e = Assert.Throws<LinuxKitException>(() => new StateStore(Path.Combine(file, "sub")));
        Assert.Contains("LINUXKIT_TESTING_HOME", e.Message, StringComparison.Ordinal);
    }
}
