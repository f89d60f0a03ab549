namespace LinuxKit.Testing.Networking;

/// <summary>A reserved port; disposing it releases the reservation (QEMU holds the port by then).</summary>
internal sealed class PortReservation(int port, string path) : IDisposable
{
    public int Port { get; } = port;

    public void Dispose()
    {
        try { File.Delete(path); } catch (IOException) { }
    }
}
