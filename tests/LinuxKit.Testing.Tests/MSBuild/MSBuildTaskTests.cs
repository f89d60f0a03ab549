using LinuxKit.Testing.MSBuild;
using LinuxKit.Testing.TestSupport;

namespace LinuxKit.Testing.Tests.MSBuild;

public sealed class MSBuildTaskTests : IDisposable
{
    private readonly DirectoryInfo _state = Directory.CreateTempSubdirectory("lkt-msbuild-");
    private readonly RecordingBuildEngine _engine = new();

    public void Dispose() => _state.Delete(recursive: true);

    private T Task<T>(T task) where T : LinuxKitTask
    {
        task.BuildEngine = _engine;
        task.StateDirectory = _state.FullName;
        return task;
    }

    [Theory]
    [InlineData("8080")]
    [InlineData("8080:80;x:1")]
    [InlineData("80:80:80")]
    public void Start_with_malformed_ports_fails_with_LKT001_naming_the_entry(string ports)
    {
        var start = Task(new StartLinuxKit { Image = "/no/image", Ports = ports });
        Assert.False(start.Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LKT001", error.Code);
        Assert.Contains("HOST:GUEST", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Start_with_a_missing_image_fails_with_LKT007_naming_the_path()
    {
        var start = Task(new StartLinuxKit { Image = "/no/such/image.qcow2" });
        Assert.False(start.Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LKT007", error.Code);
        Assert.Contains("/no/such/image.qcow2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Start_with_an_unknown_hypervisor_fails_with_LKT001_naming_the_parameter()
    {
        var start = Task(new StartLinuxKit { Image = "/no/image", Hypervisor = "virtualbox" });
        Assert.False(start.Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LKT001", error.Code);
        Assert.Contains("Hypervisor is 'virtualbox'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Start_with_memory_out_of_range_fails_with_LKT001_from_the_options_own_check()
    {
        var start = Task(new StartLinuxKit { Image = "/no/image", Memory = 10 });
        Assert.False(start.Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LKT001", error.Code);
        Assert.StartsWith("StartLinuxKit: RunOptions.Memory is 10 MB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Start_with_a_volume_without_guest_path_fails_with_LKT001_showing_how_to_write_it()
    {
        var start = Task(new StartLinuxKit { Image = "/no/image", Volumes = [new Microsoft.Build.Utilities.TaskItem(_state.FullName)] });
        Assert.False(start.Execute());
        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LKT001", error.Code);
        Assert.Contains("GuestPath", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unset_parameters_keep_the_run_options_defaults()
    {
        var defaults = new RunOptions();
        var start = new StartLinuxKit();
        Assert.Equal(defaults.Memory, start.Memory);
        Assert.Equal(defaults.Cpus, start.Cpus);
        Assert.Equal(defaults.SshUser, start.SshUser);
        Assert.Equal(defaults.BootTimeout, TimeSpan.FromSeconds(start.BootTimeout));
    }

    [Fact]
    public void Exec_without_id_or_name_fails_with_LKT006()
    {
        var exec = Task(new ExecLinuxKit { Command = "true" });
        Assert.False(exec.Execute());
        Assert.Equal("LKT006", Assert.Single(_engine.Errors).Code);
    }

    [Fact]
    public void Exec_on_an_unknown_vm_fails_naming_it()
    {
        var exec = Task(new ExecLinuxKit { Id = "deadbeef", Command = "true" });
        Assert.False(exec.Execute());
        Assert.Contains("deadbeef", Assert.Single(_engine.Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stopping_an_unknown_vm_is_a_warning_so_cleanup_targets_succeed()
    {
        var stop = Task(new StopLinuxKit { Name = "never-started" });
        Assert.True(stop.Execute());
        Assert.Empty(_engine.Errors);
        Assert.Equal("LKT004", Assert.Single(_engine.Warnings).Code);
    }
}
