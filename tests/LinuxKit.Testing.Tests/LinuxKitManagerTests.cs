using System.Diagnostics;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tests;

/// <summary>
/// The manager's own logic (stop modes, refreshing records whose process is gone, names) over a
/// fake hypervisor, with records planted in a scratch state directory and `sleep` processes
/// standing in for hypervisor processes.
/// </summary>
public sealed class LinuxKitManagerTests : IDisposable
{
    private readonly string _state = Directory.CreateTempSubdirectory("lkt-manager-").FullName;
    private readonly List<Process> _processes = [];
    private readonly FakeHypervisor _hypervisor = new();

    private LinuxKitManager Manager() => new(new LinuxKitManagerOptions { StateDirectory = _state, StopTimeout = TimeSpan.FromSeconds(3) }, () => _hypervisor);

    // A stand-in hypervisor for VM <id>: like QEMU's, its command line names the VM's pid file,
    // which is how the manager tells its hypervisor from any other process.
    private ProcessIdentity Running(string id = "0000aaaa") => Process(new StateStore(_state).Files(id).PidFile);

    private ProcessIdentity Process(params string[] arguments)
    {
        var stand_in = System.Diagnostics.Process.Start("sh", ["-c", "while :; do sleep 1; done", "stand-in-hypervisor", .. arguments]);
        _processes.Add(stand_in);
        return ProcessIdentity.Of(stand_in.Id) ?? throw new InvalidOperationException("the stand-in exited at once");
    }

    private VmRecord Plant(string id, ContainerStatus status, ProcessIdentity? process, string? name = null, StopMode stopMode = StopMode.Fast, ProcessIdentity? owner = null, HostIdentity? host = null)
    {
        var store = new StateStore(_state);
        var files = store.Files(id);
        var record = new VmRecord
        {
            Id = id,
            Name = name,
            Image = "/images/test.iso",
            Format = ImageFormat.Iso,
            Hypervisor = HypervisorKind.Qemu,
            Status = status,
            Pid = process?.Pid ?? 0,
            PidStartTime = process?.StartTime,
            SshUser = "root",
            SshKeyFile = files.SshKey,
            HostKeyFingerprint = "SHA256:test",
            StopMode = stopMode,
            OwnerPid = owner?.Pid,
            OwnerStartTime = owner?.StartTime,
            Host = host ?? HostIdentity.Current,
            Files = files,
        };
        store.Save(record);
        return record;
    }

    [Fact]
    public async Task Prune_removes_stopped_and_failed_vms_and_orphans_of_a_dead_owner_and_keeps_running_ones_with_owners()
    {
        var self = ProcessIdentity.Of(Environment.ProcessId)!.Value;
        var deadOwner = Process();
        System.Diagnostics.Process.GetProcessById(deadOwner.Pid).Kill();
        await deadOwner.WaitForExitAsync(TimeSpan.FromSeconds(5), CancellationToken.None);
        Plant("0000aaaa", ContainerStatus.Stopped, null);
        Plant("0000bbbb", ContainerStatus.Error, null);
        Plant("0000cccc", ContainerStatus.Running, Running("0000cccc"), owner: deadOwner);
        Plant("0000dddd", ContainerStatus.Running, Running("0000dddd"), owner: self);
        Plant("0000eeee", ContainerStatus.Running, Running("0000eeee")); // detached: no owner
        await using var manager = Manager();

        var dryRun = await manager.PruneAsync(dryRun: true);
        Assert.Equal(["0000aaaa", "0000bbbb", "0000cccc"], dryRun.Vms.Select(v => v.Id));
        Assert.Equal(5, (await manager.ListAsync()).Count);
        Assert.Empty(_hypervisor.Stops);

        var pruned = await manager.PruneAsync();
        Assert.Equal(["0000aaaa", "0000bbbb", "0000cccc"], pruned.Vms.Select(v => v.Id));
        Assert.Equal([StopMode.Fast], _hypervisor.Stops); // the orphan, stopped before it was removed
        Assert.Equal(["0000dddd", "0000eeee"], (await manager.ListAsync()).Select(v => v.Id));
        Assert.False(Directory.Exists(new StateStore(_state).VmDirectory("0000cccc")));
    }

    // What a shared or mounted home holds: records whose PIDs were taken on another machine, or in
    // another PID namespace of this one (a container sharing $HOME).
    public static TheoryData<string, string> Elsewhere => new()
    {
        { "another machine", "machine" },
        { "another PID namespace", "namespace" },
    };

    private static HostIdentity Foreign(string kind) => kind == "machine"
        ? HostIdentity.Current with { Machine = "0123456789abcdef0123456789abcdef", Boot = "b", PidNamespace = "pid:[4026531836]", Name = "build-agent-7" }
        : HostIdentity.Current with { PidNamespace = "pid:[4026532999]" };

    [Theory]
    [MemberData(nameof(Elsewhere))]
    public async Task A_vm_recorded_elsewhere_is_listed_as_recorded_with_where_it_runs_and_is_never_refreshed_signalled_pruned_or_removed(string place, string kind)
    {
        // Its PID names a live hypervisor here (the worst case: the same number names another
        // process on this machine), and its owner is no process here.
        var here = Running("0000aaaa");
        Plant("0000aaaa", ContainerStatus.Running, here, owner: new ProcessIdentity(999_999, "1"), host: Foreign(kind));
        Plant("0000bbbb", ContainerStatus.Stopped, null, host: Foreign(kind));
        await using var manager = Manager();

        var listed = await manager.ListAsync();
        Assert.Equal([ContainerStatus.Running, ContainerStatus.Stopped], listed.Select(v => v.Status));
        Assert.All(listed, vm => Assert.Contains(kind == "machine" ? "build-agent-7" : "PID namespace", vm.ForeignHost, StringComparison.Ordinal));
        Assert.Empty((await manager.PruneAsync()).Vms);
        var stop = await Assert.ThrowsAsync<LinuxKitException>(() => manager.StopAsync("0000aaaa"));
        Assert.Contains("rm --force 0000aaaa", stop.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<LinuxKitException>(() => manager.ExecAsync("0000aaaa", ["true"]));
        await Assert.ThrowsAsync<LinuxKitException>(() => manager.PauseAsync("0000aaaa"));
        await Assert.ThrowsAsync<LinuxKitException>(() => manager.RemoveAsync("0000bbbb"));

        Assert.Equal(["0000aaaa", "0000bbbb"], (await manager.ListAsync()).Select(v => v.Id));
        Assert.Equal(ContainerStatus.Running, (await manager.InspectAsync("0000aaaa")).Status);
        Assert.Empty(_hypervisor.Stops);
        Assert.True(here.IsAlive(), $"the process a record from {place} named was signalled");
    }

    [Theory]
    [MemberData(nameof(Elsewhere))]
    public async Task Removing_with_force_forgets_a_vm_recorded_elsewhere_without_signalling_anything(string place, string kind)
    {
        var here = Running("0000aaaa");
        Plant("0000aaaa", ContainerStatus.Running, here, host: Foreign(kind));
        await using var manager = Manager();

        await manager.RemoveAsync("0000aaaa", force: true);

        Assert.Empty(await manager.ListAsync());
        Assert.Empty(_hypervisor.Stops);
        Assert.True(here.IsAlive(), $"forgetting a record from {place} signalled the process it named");
    }

    [Fact]
    public async Task A_record_from_an_earlier_boot_of_this_machine_is_refreshed_as_any_other_its_processes_are_gone()
    {
        var gone = Running();
        _processes[^1].Kill();
        await _processes[^1].WaitForExitAsync();
        Plant("0000aaaa", ContainerStatus.Running, gone, host: HostIdentity.Current with { Boot = "an-earlier-boot", PidNamespace = "pid:[4026532999]" });
        await using var manager = Manager();

        var vm = Assert.Single(await manager.ListAsync());

        Assert.Equal(ContainerStatus.Stopped, vm.Status);
        Assert.Null(vm.ForeignHost);
    }

    [Fact]
    public async Task Remove_refuses_a_running_vm_and_removes_a_stopped_one_with_its_folder()
    {
        Plant("0000aaaa", ContainerStatus.Running, Running());
        Plant("0000bbbb", ContainerStatus.Stopped, null);
        await using var manager = Manager();

        var refused = await Assert.ThrowsAsync<LinuxKitException>(() => manager.RemoveAsync("0000aaaa"));
        Assert.Contains("stop it before removing it", refused.Message, StringComparison.Ordinal);
        await manager.RemoveAsync("0000bbbb");
        Assert.Equal(["0000aaaa"], (await manager.ListAsync()).Select(v => v.Id));
    }

    private string Iso()
    {
        var path = Path.Combine(_state, "image.iso");
        File.WriteAllBytes(path, MetadataIso.Build([("config", "{}"u8.ToArray())], DateTime.UtcNow, "cidata"));
        return path;
    }

    [Theory]
    [InlineData(StopMode.Fast, 137)]
    [InlineData(StopMode.Graceful, 0)]
    public async Task A_stop_ends_the_vm_through_its_hypervisor_the_way_it_was_started_to_stop(StopMode mode, int exitCode)
    {
        var vm = Plant("0000aaaa", ContainerStatus.Running, Running(), stopMode: mode);
        await using var manager = Manager();

        await manager.StopAsync(vm.Id);

        Assert.Equal([mode], _hypervisor.Stops);
        var stopped = manager.Inspect(vm.Id);
        Assert.Equal(ContainerStatus.Stopped, stopped.Status);
        Assert.Equal(exitCode, stopped.ExitCode);
    }

    [Fact]
    public async Task A_stop_call_that_names_a_mode_overrides_the_vms_own()
    {
        var vm = Plant("0000aaaa", ContainerStatus.Running, Running(), stopMode: StopMode.Graceful);
        await using var manager = Manager();

        await manager.StopAsync(vm.Id, StopMode.Fast);

        Assert.Equal([StopMode.Fast], _hypervisor.Stops);
        Assert.Equal(137, manager.Inspect(vm.Id).ExitCode);
    }

    [Fact]
    public async Task A_running_record_whose_hypervisor_is_gone_lists_as_stopped_and_nothing_is_signalled()
    {
        var gone = Running();
        _processes[^1].Kill();
        await _processes[^1].WaitForExitAsync();
        Plant("0000aaaa", ContainerStatus.Running, gone);
        await using var manager = Manager();

        var vm = Assert.Single(await manager.ListAsync());

        Assert.Equal(ContainerStatus.Stopped, vm.Status);
        Assert.NotNull(vm.StoppedAt);
        await manager.StopAsync(vm.Id); // already stopped: the hypervisor is not asked
        Assert.Empty(_hypervisor.Stops);
    }

    [Fact]
    public async Task A_record_naming_a_process_that_is_not_its_hypervisor_lists_as_stopped_and_that_process_is_never_signalled()
    {
        var foreign = Process("--not-a-vm"); // alive, this user's, but its command line names no pid file of the VM
        Plant("0000aaaa", ContainerStatus.Running, foreign);
        await using var manager = Manager();

        var vm = Assert.Single(await manager.ListAsync());
        await manager.StopAsync(vm.Id);

        Assert.Equal(ContainerStatus.Stopped, vm.Status);
        Assert.Empty(_hypervisor.Stops);
        Assert.True(foreign.IsAlive());
    }

    [Fact]
    public async Task A_damaged_record_lists_as_an_error_with_its_reason_beside_the_others_and_a_stop_removes_it()
    {
        Plant("0000aaaa", ContainerStatus.Stopped, null);
        Directory.CreateDirectory(Path.Combine(_state, "vms", "0000bbbb"));
        File.WriteAllText(Path.Combine(_state, "vms", "0000bbbb", "vm.json"), "{ truncated");
        await using var manager = Manager();

        var all = await manager.ListAsync();

        Assert.Equal(["0000aaaa", "0000bbbb"], all.Select(c => c.Id));
        var damaged = all[1];
        Assert.Equal(ContainerStatus.Error, damaged.Status);
        Assert.Contains("vms/0000bbbb/vm.json' is not trusted: it is not a VM record", damaged.Error, StringComparison.Ordinal);
        await manager.StopAsync("0000bbbb");
        Assert.False(Directory.Exists(Path.Combine(_state, "vms", "0000bbbb")));
    }

    [Fact]
    public async Task A_running_record_without_a_host_key_pin_is_refused_before_any_connection()
    {
        var vm = Plant("0000aaaa", ContainerStatus.Running, Running()) with { HostKeyFingerprint = null };
        new StateStore(_state).Save(vm);
        await using var manager = Manager();

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.ExecAsync("0000aaaa", ["true"]));

        Assert.Contains("no host-key pin", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_name_of_a_running_vm_is_refused_before_anything_starts()
    {
        Plant("0000aaaa", ContainerStatus.Running, Running(), name: "db");
        await using var manager = Manager();

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(Iso(), new RunOptions { Name = "db" }));

        Assert.Contains("A VM named 'db' is already running (id 0000aaaa)", e.Message, StringComparison.Ordinal);
        Assert.Equal(0, _hypervisor.Starts);
    }

    [Fact]
    public async Task A_stopped_vm_gives_up_its_name_and_its_folder_to_the_next_vm_of_that_name()
    {
        Plant("0000aaaa", ContainerStatus.Stopped, process: null, name: "db");
        await using var manager = Manager();

        // The fake refuses to start: the boot fails after the name was claimed.
        await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(Iso(), new RunOptions { Name = "db" }));

        Assert.Equal(1, _hypervisor.Starts);
        Assert.False(Directory.Exists(new StateStore(_state).VmDirectory("0000aaaa")));
        var failed = Assert.Single(await manager.ListAsync());
        Assert.Equal("db", failed.Name);
        Assert.Equal(ContainerStatus.Error, failed.Status);
    }

    [Theory]
    [InlineData(true, null, true)]
    [InlineData(false, null, false)]
    [InlineData(true, false, false)]
    public async Task By_default_an_isos_kernel_is_loaded_directly_only_by_a_hypervisor_that_can(bool hypervisorCan, bool? asked, bool direct)
    {
        _hypervisor.LoadsKernelsFromImages = hypervisorCan;
        _hypervisor.Refusal = "stop here";
        var iso = Path.Combine(_state, "os.iso");
        File.WriteAllBytes(iso, Images.DirectKernelTests.Fixture("linuxkit-bios.iso"));
        await using var manager = Manager();

        await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(iso, new RunOptions { DirectKernelBoot = asked }));

        Assert.Equal(direct, _hypervisor.Validated?.DirectKernel is not null);
    }

    [Fact]
    public async Task A_vm_its_hypervisor_refuses_is_refused_before_any_folder_port_or_disk_is_taken()
    {
        _hypervisor.Refusal = "the fake refuses this VM";
        await using var manager = Manager();

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(Iso(), new RunOptions { Name = "db" }));

        Assert.Equal("the fake refuses this VM", e.Message);
        Assert.Equal(0, _hypervisor.Starts);
        Assert.Empty(await manager.ListAsync());
        Assert.False(Directory.Exists(Path.Combine(_state, "vms")) && Directory.EnumerateFileSystemEntries(Path.Combine(_state, "vms")).Any());
    }

    public void Dispose()
    {
        foreach (var process in _processes)
        {
            if (!process.HasExited) process.Kill();
            process.Dispose();
        }
        Directory.Delete(_state, recursive: true);
    }

    /// <summary>Records what it is asked; a stop kills the stand-in process; it never starts a VM.</summary>
    private sealed class FakeHypervisor : IHypervisor
    {
        public List<StopMode> Stops { get; } = [];

        /// <summary>When set, Validate refuses every VM with this reason.</summary>
        public string? Refusal { get; set; }

        public int Starts { get; private set; }

        public HypervisorKind Kind => HypervisorKind.Qemu;

        public bool LoadsKernelsFromImages { get; set; } = true;

        /// <summary>The image as the manager handed it over, its kernel to be loaded directly or not.</summary>
        public LinuxKitImage? Validated { get; private set; }

        public void Validate(LinuxKitImage image, RunOptions options)
        {
            Validated = image;
            if (Refusal is not null) throw new LinuxKitException(Refusal);
        }

        public Task<string?> PrepareBootDiskAsync(LinuxKitImage image, VmFiles files, CancellationToken cancellationToken) => Task.FromResult<string?>(null);

        public Task<ProcessIdentity> StartAsync(VmSpec spec, CancellationToken cancellationToken)
        {
            Starts++;
            throw new LinuxKitException("the fake hypervisor starts nothing");
        }

        public async Task<int> StopAsync(VmFiles vm, ProcessIdentity process, StopMode mode, TimeSpan gracePeriod, CancellationToken cancellationToken)
        {
            Stops.Add(mode);
            process.Signal(UnixSignal.Kill);
            await process.WaitForExitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return mode == StopMode.Fast ? 137 : 0;
        }

        public Task PauseAsync(string controlSocket, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task ResumeAsync(string controlSocket, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
