using System.Globalization;
using System.Net;
using System.Net.Sockets;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Networking;

/// <summary>
/// Chooses host ports for forwarding. A port is free when nothing listens on 127.0.0.1 at it
/// and no other process has reserved it; the reservation (a file created exclusively in a
/// folder every process of this state directory shares) closes the gap between "this port is
/// free" and QEMU binding it, so processes starting VMs at the same moment never pick the same
/// port. Processes on other state directories are kept apart by the listen check and by QEMU
/// failing to bind a taken port.
/// </summary>
internal sealed class PortAllocator
{
    private readonly string _directory;

    /// <param name="directory">Where reservations are made: the state directory's private folder, so no other user can hold or fake them.</param>
    public PortAllocator(string directory)
    {
        _directory = directory;
        PrivateFiles.CreateFolder(_directory);
    }

    /// <summary>Reserves a free port the OS picks.</summary>
    public PortReservation ReserveFree()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            if (TryReserve(port) is { } reservation) return reservation;
        }
        throw new LinuxKitException("No free TCP port on 127.0.0.1 could be reserved after 100 tries.");
    }

    /// <summary>Reserves a port the user asked for; fails with a clear error when it is taken.</summary>
    public PortReservation ReserveExact(int port, string purpose)
    {
        if (!IsFree(port))
            throw new LinuxKitException($"Host port {port} ({purpose}) is already in use on 127.0.0.1. Choose another port, or 0 for a free one.");
        return TryReserve(port)
            ?? throw new LinuxKitException($"Host port {port} ({purpose}) is being taken by another process starting a VM. Choose another port, or 0 for a free one.");
    }

    private PortReservation? TryReserve(int port)
    {
        var path = Path.Combine(_directory, port.ToString(CultureInfo.InvariantCulture));
        for (var attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                using (var file = PrivateFiles.CreateNew(path))
                using (var writer = new StreamWriter(file))
                {
                    var self = ProcessIdentity.Of(Environment.ProcessId);
                    writer.Write($"{Environment.ProcessId} {self?.StartTime}");
                }
                if (IsFree(port)) return new PortReservation(port, path);
                File.Delete(path);
                return null;
            }
            catch (IOException) when (File.Exists(path))
            {
                if (!IsStale(path)) return null;
                try { File.Delete(path); } catch (IOException) { return null; }
            }
        }
        return null;
    }

    // A reservation outlives neither its process nor a few minutes: by then QEMU holds the port.
    private static bool IsStale(string path)
    {
        try
        {
            if (DateTime.UtcNow - File.GetLastWriteTimeUtc(path) > TimeLimits.PortReservation) return true;
            var parts = File.ReadAllText(path).Split(' ', 2);
            if (parts.Length < 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var pid)) return false;
            return !new ProcessIdentity(pid, parts[1]).IsAlive();
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
