using System.Reflection;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using LinuxKit.Testing.Testcontainers;
using Xunit;

namespace TestcontainersSample;

/// <summary>
/// The Testcontainers getting-started test, with a LinuxKit VM instead of a container: the
/// image's web server is published on a random host port, and the test waits until it answers.
/// </summary>
public sealed class WebServerTests : IAsyncLifetime
{
    private static readonly string Image = typeof(WebServerTests).Assembly
        .GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "LinuxKitTestImage").Value!;

    private readonly LinuxKitContainer _vm = new LinuxKitBuilder()
        .WithImage(Image)
        .WithMemory(256)
        .WithPortBinding(80, assignRandomHostPort: true)
        .WithWaitStrategy(Wait.ForUnixContainer()
            .UntilMessageIsLogged("Welcome to LinuxKit")
            .UntilHttpRequestIsSucceeded(request => request.ForPort(80).ForPath("/index.html")))
        .Build();

    public Task InitializeAsync() => _vm.StartAsync();

    public Task DisposeAsync() => _vm.DisposeAsync().AsTask();

    [Fact]
    public async Task The_guest_web_server_answers_on_a_random_host_port()
    {
        using var http = new HttpClient();
        var uri = new UriBuilder("http", _vm.Hostname, _vm.GetMappedPublicPort(80), "index.html").Uri;

        var page = await http.GetStringAsync(uri);

        Assert.Contains("Hello from LinuxKit", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_file_copied_in_is_served()
    {
        await _vm.CopyAsync("<p>copied</p>"u8.ToArray(), "/www/copied.html");
        using var http = new HttpClient();

        var page = await http.GetStringAsync($"http://{_vm.Hostname}:{_vm.GetMappedPublicPort(80)}/copied.html");

        Assert.Equal("<p>copied</p>", page);
    }

    [Fact]
    public async Task The_guest_runs_commands_like_a_container()
    {
        var result = await _vm.ExecAsync(["uname", "-s"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Equal("Linux\n", result.Stdout);
    }
}
