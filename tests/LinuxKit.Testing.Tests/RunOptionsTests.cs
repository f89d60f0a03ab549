namespace LinuxKit.Testing.Tests;

public class RunOptionsTests
{
    [Fact]
    public void Defaults_are_valid_and_match_the_original_design()
    {
        var options = new RunOptions();
        options.Validate();
        Assert.Equal(1024, options.Memory);
        Assert.Equal(1, options.Cpus);
        Assert.Equal("root", options.SshUser);
        Assert.Equal(0, options.SshPort);
    }

    public static TheoryData<RunOptions, string> Invalid => new()
    {
        { new RunOptions { Memory = 10 }, "RunOptions.Memory" },
        { new RunOptions { Cpus = 0 }, "RunOptions.Cpus" },
        { new RunOptions { SshPort = 70000 }, "RunOptions.SshPort" },
        { new RunOptions { Ports = [new PortMapping(8080, 0)] }, "RunOptions.Ports" },
        { new RunOptions { Ports = [new PortMapping(-1, 80)] }, "RunOptions.Ports" },
        { new RunOptions { Ports = [new PortMapping(8080, 80), new PortMapping(8080, 81)] }, "same host port" },
        { new RunOptions { SshPort = 2222, Ports = [new PortMapping(2222, 80)] }, "same host port" },
        { new RunOptions { Name = "bad name" }, "RunOptions.Name" },
        { new RunOptions { SshUser = " " }, "RunOptions.SshUser" },
        { new RunOptions { SshUser = "-oProxyCommand=touch /tmp/x" }, "RunOptions.SshUser '-oProxyCommand=touch /tmp/x' is not a user name" },
        { new RunOptions { SshUser = "root@evil.example" }, "is not a user name" },
        { new RunOptions { Name = "deadbeef" }, "RunOptions.Name 'deadbeef' reads as a VM id" },
        { new RunOptions { BootTimeout = TimeSpan.Zero }, "RunOptions.BootTimeout" },
        { new RunOptions { Volumes = new Dictionary<string, string> { ["/no/such/dir"] = "/data" } }, "/no/such/dir" },
        { new RunOptions { Volumes = new Dictionary<string, string> { ["/tmp"] = "relative" } }, "relative" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_option_is_refused_naming_the_option(RunOptions options, string named)
    {
        var e = Assert.Throws<LinuxKitException>(options.Validate);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Several_free_ports_may_be_requested()
    {
        var options = new RunOptions { Ports = [new PortMapping(0, 80), new PortMapping(0, 443)] };

        Assert.Null(Record.Exception(options.Validate));
    }

    [Theory]
    [InlineData("root")]
    [InlineData("user")]
    [InlineData("build-agent_1.ci")]
    public void Ordinary_user_names_are_accepted(string user) => Assert.Null(Record.Exception(new RunOptions { SshUser = user }.Validate));

    [Theory]
    [InlineData("DEADBEEF")] // not an id: ids are lower-case
    [InlineData("deadbeef0")]
    [InlineData("web")]
    public void Names_that_do_not_read_as_ids_are_accepted(string name) => Assert.Null(Record.Exception(new RunOptions { Name = name }.Validate));
}
