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
        ConsoleLog = "/c",
        ControlSocket = "/s",
        PidFile = "/p",
        HypervisorLog = "/h",
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
    public void Damaged_record_is_an_error_naming_the_file_and_is_left_untouched()
    {
        var store = new StateStore(_dir.FullName);
        store.Save(Record("0000bbbb"));
        var path = Path.Combine(store.VmDirectory("0000bbbb"), "vm.json");
        File.WriteAllText(path, "{ \"Id\": \"0000bbbb\", trunc");

        var e = Assert.Throws<LinuxKitException>(() => store.Load("0000bbbb"));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Equal("{ \"Id\": \"0000bbbb\", trunc", File.ReadAllText(path));
        Assert.Throws<LinuxKitException>(store.LoadAll);
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
