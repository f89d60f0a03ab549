using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Networking;

namespace LinuxKit.Testing.Hypervisors.Hyperkit;

/// <summary>
/// Builds the hyperkit, vpnkit and vpnkit-expose-port arguments for a VM, as
/// <c>linuxkit run hyperkit</c> lays them out. Pure: every format and option is covered by
/// snapshot tests.
/// </summary>
internal static class HyperkitCommandBuilder
{
    public static IReadOnlyList<string> Build(VmSpec spec, HyperkitLayout layout)
    {
        // hyperkit splits -s and -f values at commas: a comma in a path would be misread.
        foreach (var path in new[] { spec.Image.Path, spec.Image.Initrd, spec.BootDisk, spec.MetadataIso, spec.Files.PidFile, layout.Files.Directory, layout.Firmware })
        {
            if (path is not null && path.Contains(',', StringComparison.Ordinal))
                throw new LinuxKitException($"Hyperkit cannot use '{path}': its options are comma-separated and the path contains a comma. Move or rename it.");
        }

        var args = new List<string>
        {
            "-A", "-u",
            "-F", spec.Files.PidFile,
            "-c", Invariant(spec.Cpus),
            "-m", Invariant(spec.MemoryMb) + "M",
            "-s", "0:0,hostbridge",
            "-s", "31,lpc",
        };
        var slot = 1;
        args.AddRange(layout.Networking == HyperkitNetworking.VpnKit
            ? ["-s", $"{slot++}:0,virtio-vpnkit,path={layout.Files.VpnKitEthernetSocket},uuid={VpnKitKey(HyperkitLayout.GuestAddress)}"]
            : ["-s", $"{slot++}:0,virtio-net"]);
        // A UUID of its own per VM (else every guest has the same product_uuid), stable for the VM.
        args.AddRange(["-U", StableUuid(spec.Id)]);

        var bootsFromDisk = spec.Image.Format is ImageFormat.Raw or ImageFormat.Qcow2 or ImageFormat.Vmdk;
        if (bootsFromDisk)
        {
            var disk = spec.BootDisk ?? throw new ArgumentException("Disk images boot from the raw copy in the VM's folder.", nameof(spec));
            args.AddRange(["-s", $"{slot++}:0,virtio-blk,{disk}"]);
        }
        if (layout.Networking == HyperkitNetworking.VpnKit)
        {
            // Published ports reach the guest over vsock, through vpnkit-forwarder.
            args.AddRange(["-s", $"{slot++},virtio-sock,guest_cid=3,path={layout.Files.Directory},guest_forwards={HyperkitLayout.ForwarderVsockPort}"]);
        }
        if (spec.Image.Format == ImageFormat.Iso) args.AddRange(["-s", $"{slot++},ahci-cd,{spec.Image.Path}"]);
        args.AddRange(["-s", $"{slot++},ahci-cd,{spec.MetadataIso}"]);
        args.AddRange(["-s", $"{slot++},virtio-rnd"]);
        if (layout.Networking == HyperkitNetworking.VpnKit)
        {
            // The guest's vpnkit-forwarder learns which ports to forward through this 9p share.
            args.AddRange(["-s", $"{slot++},virtio-9p,path={layout.Files.VpnKitPortSocket},tag=port"]);
        }

        // The console goes to hyperkit's stdout, which the backend appends to the console log.
        args.AddRange(["-l", "com1,stdio"]);
        if (spec.Image.Format == ImageFormat.KernelInitrd)
        {
            args.AddRange(["-f", $"kexec,{spec.Image.Path},{spec.Image.Initrd},earlyprintk=serial {spec.Image.CommandLine}".TrimEnd()]);
        }
        else
        {
            var firmware = layout.Firmware ?? throw new ArgumentException("ISO and disk images boot through EFI firmware.", nameof(layout));
            args.AddRange(["-f", $"bootrom,{firmware},,"]);
        }
        return args;
    }

    /// <summary>One VPNKit per VM: ethernet and port-control sockets in the VM's folder.</summary>
    public static IReadOnlyList<string> VpnKit(HyperkitLayout layout) =>
    [
        "--ethernet", layout.Files.VpnKitEthernetSocket,
        "--port", layout.Files.VpnKitPortSocket,
        "--vsock-path", layout.Files.VsockConnectSocket,
    ];

    /// <summary>Publishes 127.0.0.1:<paramref name="forward"/>.HostPort on the guest's port, for as long as the process runs.</summary>
    public static IReadOnlyList<string> ExposePort(HyperkitLayout layout, PortForward forward) =>
    [
        "-proto", "tcp",
        "-host-ip", Loopback.Address,
        "-host-port", Invariant(forward.HostPort),
        "-container-ip", HyperkitLayout.GuestAddress,
        "-container-port", Invariant(forward.GuestPort),
        "-vpnkit", layout.Files.VpnKitPortSocket,
    ];

    /// <summary>
    /// VPNKit gives the guest the IPv4 address held in the last four bytes of this UUID (how
    /// <c>linuxkit run hyperkit -ip</c> pins an address).
    /// </summary>
    public static string VpnKitKey(string ipv4)
    {
        var bytes = System.Net.IPAddress.Parse(ipv4).GetAddressBytes();
        return string.Create(CultureInfo.InvariantCulture, $"00000000-0000-0000-0000-0000{bytes[0]:x2}{bytes[1]:x2}{bytes[2]:x2}{bytes[3]:x2}");
    }

    /// <summary>A name-based UUID of the VM id (SHA-256, version bits 8): the same VM always gets the same one.</summary>
    public static string StableUuid(string vmId)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes("linuxkit-testing:" + vmId));
        hash[6] = (byte)((hash[6] & 0x0F) | 0x80);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        var hex = Convert.ToHexString(hash.AsSpan(0, 16)).ToLowerInvariant();
        return $"{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..32]}";
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
