namespace LinuxKit.Testing;

/// <summary>A guest network interface as the guest reports it.</summary>
/// <param name="MacAddress">Its MAC address; empty when unknown.</param>
/// <param name="IpAddress">Its IPv4 address; empty when unknown.</param>
public sealed record GuestNetwork(string MacAddress, string IpAddress);
