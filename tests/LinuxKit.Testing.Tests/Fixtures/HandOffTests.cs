using LinuxKit.Testing.Fixtures;

namespace LinuxKit.Testing.Tests.Fixtures;

/// <summary>Tests that set this process's environment or the hand-off file beside the test assembly run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironment
{
    public const string Name = "Process environment";
}

[Collection(ProcessEnvironment.Name)]
public sealed class HandOffTests : IDisposable
{
    private static readonly string FileBesideTests = Path.Combine(AppContext.BaseDirectory, HandOff.FileName);
    private readonly string _state = Directory.CreateTempSubdirectory("handoff-state-").FullName;
    private readonly Dictionary<string, string?> _saved = LinuxKitEnvironment.HandOff.Append(LinuxKitEnvironment.StateDirectory)
        .ToDictionary(n => n, Environment.GetEnvironmentVariable);

    public HandOffTests()
    {
        foreach (var name in _saved.Keys) Environment.SetEnvironmentVariable(name, null);
    }

    public void Dispose()
    {
        foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
        File.Delete(FileBesideTests);
        Directory.Delete(_state, recursive: true);
    }

    private static Container Vm(string id) => new() { Id = id, Image = "os.iso", SshPort = 2222, SshKeyFile = "/k", SshUser = "me" };

    [Fact]
    public void A_file_hand_off_is_found_with_its_state_directory()
    {
        HandOff.Export(Vm("0000beef"), _state, FileBesideTests, environment: false);
        var found = HandOff.Find();
        Assert.Equal(new HandOff.Found("0000beef", _state, FromFile: true), found);
        Assert.Null(Environment.GetEnvironmentVariable(LinuxKitEnvironment.VmId));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(FileBesideTests));
    }

    [Fact]
    public void The_environment_wins_over_a_file()
    {
        HandOff.Export(Vm("0000aaaa"), _state, FileBesideTests, environment: false);
        HandOff.Export(Vm("0000bbbb"), _state, file: null, environment: true);
        Assert.Equal(new HandOff.Found("0000bbbb", null, FromFile: false), HandOff.Find());
        Assert.Equal("2222", Environment.GetEnvironmentVariable(LinuxKitEnvironment.VmSshPort));
        Assert.Equal("me", Environment.GetEnvironmentVariable(LinuxKitEnvironment.VmSshUser));
    }

    [Fact]
    public void Clearing_takes_back_only_the_stopped_vms_variables_and_removes_its_file()
    {
        HandOff.Export(Vm("0000cccc"), _state, FileBesideTests, environment: true);
        HandOff.Clear("0000dddd");
        Assert.Equal("0000cccc", Environment.GetEnvironmentVariable(LinuxKitEnvironment.VmId));

        HandOff.Clear("0000cccc", FileBesideTests);
        Assert.All(LinuxKitEnvironment.HandOff, name => Assert.Null(Environment.GetEnvironmentVariable(name)));
        Assert.False(File.Exists(FileBesideTests));
        Assert.Null(HandOff.Find());
    }

    [Fact]
    public async Task A_file_naming_a_vm_that_is_gone_is_void_but_a_variable_naming_one_is_an_error()
    {
        await using var manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = _state });
        Assert.Null(await HandOff.ResolveAsync(manager, new HandOff.Found("0000eeee", _state, FromFile: true), CancellationToken.None));

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => HandOff.ResolveAsync(manager, new HandOff.Found("0000eeee", null, FromFile: false), CancellationToken.None));
        Assert.Contains(LinuxKitEnvironment.VmId, e.Message, StringComparison.Ordinal);
        Assert.Contains(manager.StateDirectory, e.Message, StringComparison.Ordinal);
    }
}
