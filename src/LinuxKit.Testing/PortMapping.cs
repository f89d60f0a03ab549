using System.Globalization;

namespace LinuxKit.Testing;

/// <summary>A host port forwarded to a guest TCP port.</summary>
/// <param name="HostPort">The port on 127.0.0.1; 0 picks a free one.</param>
/// <param name="GuestPort">The port in the VM.</param>
public readonly record struct PortMapping(int HostPort, int GuestPort)
{
    /// <summary>
    /// Reads "HOST:GUEST" (HOST 0 picks a free port), as the MSBuild task and the fixture
    /// attribute take ports; the ranges are checked by <see cref="RunOptions.Validate"/>.
    /// </summary>
    /// <exception cref="LinuxKitException">The text is not two port numbers separated by ':'.</exception>
    public static PortMapping Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(':', StringSplitOptions.TrimEntries);
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var host)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var guest))
            throw new LinuxKitException($"Port '{text}' is not HOST:GUEST: write e.g. \"8080:80\", or \"0:5432\" for a free host port.");
        return new PortMapping(host, guest);
    }
}
