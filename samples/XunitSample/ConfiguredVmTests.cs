using LinuxKit.Testing.Xunit;
using Xunit;
using Xunit.Abstractions;

namespace XunitSample;

// A fixture of its own: a subclass sets options in Configure; the image still comes from the
// assembly's [LinuxKitImage] attribute.
public class SmallVmWithSsh(IMessageSink sink) : LinuxKitVm(sink)
{
    protected override void Configure() =>
        Options = Options with { Memory = 256, Ports = [new(0, 22)] };
}

public class ConfiguredVmTests(SmallVmWithSsh vm) : IClassFixture<SmallVmWithSsh>
{
    [Fact]
    public async Task Configured_memory_and_forwarded_port_are_applied()
    {
        Assert.Equal(256, vm.Container.Memory);
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(vm.Host, vm.HostPortFor(22));
        using var reader = new StreamReader(client.GetStream());
        Assert.StartsWith("SSH-2.0-", await reader.ReadLineAsync(), StringComparison.Ordinal);
    }
}
