using System.Globalization;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>Ports written the way Testcontainers users write Docker's.</summary>
internal static class DockerPorts
{
    /// <summary>"80" or "80/tcp" as a port number; UDP and anything else is refused (only TCP is forwarded).</summary>
    /// <exception cref="ArgumentException"><paramref name="containerPort"/> is not a TCP port.</exception>
    public static int ParseTcp(string containerPort)
    {
        var parts = containerPort.Split('/');
        if (parts.Length > 2 || (parts.Length == 2 && !parts[1].Equals("tcp", StringComparison.OrdinalIgnoreCase))
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            throw new ArgumentException($"'{containerPort}' is not a TCP port (give \"80\" or \"80/tcp\"; UDP is not forwarded).", nameof(containerPort));
        return port;
    }
}
