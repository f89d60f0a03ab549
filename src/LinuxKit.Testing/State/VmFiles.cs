namespace LinuxKit.Testing.State;

/// <summary>
/// The files of one VM's folder in the state directory, named in this one place: the store,
/// the manager and both hypervisors take their paths from here.
/// </summary>
/// <param name="Id">The VM's id (also its folder's name).</param>
/// <param name="Directory">The VM's folder.</param>
internal sealed record VmFiles(string Id, string Directory)
{
    // Unix socket paths are limited to about 100 bytes (108 with the terminating NUL on Linux,
    // 104 on macOS).
    private const int MaxSocketPath = 100;

    /// <summary>The VM's record (see <see cref="VmRecord"/>).</summary>
    public string Record => Path.Combine(Directory, "vm.json");

    /// <summary>The serial console, as the hypervisor writes it.</summary>
    public string ConsoleLog => Path.Combine(Directory, "console.log");

    /// <summary>The firmware's debug log (QEMU's SeaBIOS): where "No bootable device" appears.</summary>
    public string FirmwareLog => Path.Combine(Directory, "firmware.log");

    /// <summary>The hypervisor's own messages after it started.</summary>
    public string HypervisorLog => Path.Combine(Directory, "hypervisor.log");

    /// <summary>The hypervisor's PID, written by the hypervisor.</summary>
    public string PidFile => Path.Combine(Directory, "hypervisor.pid");

    /// <summary>The private key made for the VM when the caller gave none.</summary>
    public string SshKey => Path.Combine(Directory, "id_ecdsa");

    /// <summary>LinuxKit's metadata CD-ROM, holding the authorized key and the volume mounts.</summary>
    public string MetadataIso => Path.Combine(Directory, "metadata.iso");

    /// <summary>The VM's own copy of the UEFI variables (writable pflash), from the firmware's template.</summary>
    public string UefiVars => Path.Combine(Directory, "efivars.fd");

    /// <summary>The qcow2 overlay QEMU boots a disk image through.</summary>
    public string Overlay => Path.Combine(Directory, "disk.qcow2");

    /// <summary>The guest RAM of a VM that was its warm-start template (a file, so the template could be saved).</summary>
    public string Memory => Path.Combine(Directory, "memory.ram");

    /// <summary>The kernel copied out of an ISO or disk to be loaded directly (<see cref="RunOptions.DirectKernelBoot"/>).</summary>
    public string Kernel => Path.Combine(Directory, "kernel");

    /// <summary>The initrd copied out beside <see cref="Kernel"/>.</summary>
    public string Initrd => Path.Combine(Directory, "initrd.img");

    /// <summary>The raw copy hyperkit boots a disk image from.</summary>
    public string RawDisk => Path.Combine(Directory, "disk.img");

    /// <summary>VPNKit's Ethernet socket, which hyperkit connects the guest's NIC to.</summary>
    public string VpnKitEthernetSocket => Path.Combine(Directory, "vpnkit_eth.sock");

    /// <summary>VPNKit's port-forwarding control socket.</summary>
    public string VpnKitPortSocket => Path.Combine(Directory, "vpnkit_port.sock");

    /// <summary>Where hyperkit's virtio-sock device makes the guest's vsock ports reachable.</summary>
    public string VsockConnectSocket => Path.Combine(Directory, "connect");

    /// <summary>
    /// The hypervisor's control socket (QMP), in the folder unless its path would be too long for
    /// a Unix socket: then in the temp folder, still named for the VM.
    /// </summary>
    public string ControlSocket
    {
        get
        {
            var inFolder = Path.Combine(Directory, "control.sock");
            if (inFolder.Length <= MaxSocketPath) return inFolder;
            // Too long for a socket's address: in this user's private socket folder, named for
            // the VM's folder (two state directories may hold the same id, and templates' VMs
            // all have one of a few names).
            var folderHash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Directory)))[..16].ToLowerInvariant();
            return Path.Combine(ShortSocketFolder, folderHash + ".sock");
        }
    }

    /// <summary>
    /// Where sockets go whose path in the VM's folder would be too long: a folder of this user's
    /// beside the temporary files, never a shared, predictable name another user could plant.
    /// </summary>
    public static string ShortSocketFolder => Path.Combine(Path.GetTempPath(), $"linuxkit-testing-{PrivateFiles.CurrentUser()}");

    /// <summary>
    /// Makes the folder the control socket goes in, when it is not the VM's own: 0700, and
    /// refused when it is a link, another user's, or writable by others.
    /// </summary>
    public void PrepareControlSocketFolder()
    {
        var folder = Path.GetDirectoryName(ControlSocket)!;
        if (folder == Directory) return;
        PrivateFiles.CreateFolder(folder);
        if (PrivateFiles.Distrust(folder) is { } reason)
            throw new LinuxKitException($"The folder for VM {Id}'s control socket, '{folder}', is refused: {reason}. Remove it, or use a state directory with a shorter path.");
    }
}
