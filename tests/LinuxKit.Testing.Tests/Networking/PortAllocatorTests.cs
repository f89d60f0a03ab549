using System.Net;
using System.Net.Sockets;
using LinuxKit.Testing.Networking;

namespace LinuxKit.Testing.Tests.Networking;

public sealed class PortAllocatorTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-ports-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void Port_in_use_is_refused_naming_port_and_purpose()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var e = Assert.Throws<LinuxKitException>(() => new PortAllocator(_dir.FullName).ReserveExact(port, "SSH"));
        Assert.Contains(port.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
        Assert.Contains("SSH", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reserved_port_is_not_handed_out_again_until_released()
    {
        var a = new PortAllocator(_dir.FullName);
        var b = new PortAllocator(_dir.FullName);
        var first = a.ReserveFree();
        Assert.Throws<LinuxKitException>(() => b.ReserveExact(first.Port, "test"));
        first.Dispose();
        b.ReserveExact(first.Port, "test").Dispose();
    }

    [Fact]
    public async Task Parallel_reservations_never_collide()
    {
        var allocators = Enumerable.Range(0, 4).Select(_ => new PortAllocator(_dir.FullName)).ToList();
        var reservations = await Task.WhenAll(Enumerable.Range(0, 64).Select(i => Task.Run(() => allocators[i % 4].ReserveFree())));
        Assert.Equal(reservations.Length, reservations.Select(r => r.Port).Distinct().Count());
        foreach (var r in reservations) r.Dispose();
    }

    [Fact]
    public void Reservation_of_a_dead_process_is_stale_and_reclaimed()
    {
        var allocator = new PortAllocator(_dir.FullName);
        var port = allocator.ReserveFree();
        var path = Path.Combine(_dir.FullName, port.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        File.WriteAllText(path, "999999 12345"); // no such process

        using var reclaimed = allocator.ReserveExact(port.Port, "test");

        Assert.Equal(port.Port, reclaimed.Port);
        Assert.Contains(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(path), StringComparison.Ordinal);
    }
}
