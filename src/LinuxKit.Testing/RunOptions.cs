namespace LinuxKit.Testing;

/// <summary>How to run a VM. Immutable: derive variants with <c>with</c>.</summary>
public sealed record RunOptions
{
    /// <summary>An optional name, unique among running VMs; usable wherever an id is.</summary>
    public string? Name { get; init; }

    /// <summary>
    /// When true the VM outlives the process that started it (stop it with
    /// <see cref="IManager.StopAsync(string, CancellationToken)"/>, from any process). When false it dies with its owner,
    /// even if the owner is killed.
    /// </summary>
    public bool Detach { get; init; }

    /// <summary>Memory in MB (default 1024).</summary>
    public int Memory { get; init; } = 1024;

    /// <summary>Virtual CPUs (default 1).</summary>
    public int Cpus { get; init; } = 1;

    /// <summary>TCP ports forwarded from 127.0.0.1 on the host to the guest.</summary>
    public IReadOnlyList<PortMapping> Ports { get; init; } = [];

    /// <summary>Host folders shared with the guest over 9p: host path to guest mount point.</summary>
    public IReadOnlyDictionary<string, string> Volumes { get; init; } = new Dictionary<string, string>();

    /// <summary>The host port for the guest's SSH server; 0 picks a free one.</summary>
    public int SshPort { get; init; }

    /// <summary>
    /// A private key that the image already accepts, or that it should accept through LinuxKit
    /// metadata. When null, a fresh key is made for this VM and handed to it as metadata
    /// (/run/config/ssh/authorized_keys).
    /// </summary>
    public string? SshKey { get; init; }

    /// <summary>The SSH user (default root).</summary>
    public string SshUser { get; init; } = "root";

    /// <summary>
    /// A stream the serial console is copied to as the VM writes it, from the first byte of the
    /// boot until the VM stops (also when the boot fails). The caller owns and disposes it.
    /// </summary>
    public Stream? ConsoleOutput { get; init; }

    /// <summary>
    /// How the VM is stopped when nothing else is asked for: <see cref="StopMode.Fast"/> (the
    /// default) ends it at once, <see cref="StopMode.Graceful"/> asks the guest to power off first.
    /// </summary>
    public StopMode StopMode { get; init; } = StopMode.Fast;

    /// <summary>
    /// When true the guest's network reaches nothing outside the VM: not the host's loopback
    /// services (a database on 127.0.0.1 of the test host), not the internet. Forwarded ports
    /// and SSH still reach the guest. Off by default, since many guests fetch things at boot.
    /// QEMU only (user networking with <c>restrict=on</c>).
    /// </summary>
    public bool RestrictNetwork { get; init; }

    /// <summary>
    /// When true (the default) the VM is restored from a memory snapshot of an earlier boot of
    /// the same image and options (a warm-start template, made by the first such VM) instead of
    /// booting: a fraction of a cold boot. Its clock, random generator and key are renewed
    /// before it is handed over; it shares the template's SSH host key. A template that cannot
    /// be made or restored means a cold boot and a warning, never a failure. VMs with volumes,
    /// and VMs under Hyperkit, always boot cold. The environment variable
    /// LINUXKIT_TESTING_WARM_START=0 turns it off for every VM.
    /// </summary>
    public bool WarmStart { get; init; } = true;

    /// <summary>
    /// True to boot cold rather than hand out a warm-start clone whose clock and random state
    /// could not be renewed (the guest logs in as a user other than root, or mounts /tmp
    /// noexec): such a clone starts with the template's clock and the random state its
    /// daemons already drew, shared with every other clone. False (the default) hands it out
    /// with a warning, once per image.
    /// </summary>
    public bool UniqueClones { get; init; }

    /// <summary>
    /// The firmware: <see cref="Firmware.Auto"/> (the default) reads it from the image (an ISO's
    /// boot catalog, a disk's partition table; arm64 disks and ISOs boot under UEFI; an image
    /// that boots under both gets BIOS, which is faster).
    /// </summary>
    public Firmware Firmware { get; init; }

    /// <summary>
    /// The guest's architecture: <see cref="GuestArchitecture.Auto"/> (the default) reads it
    /// from the image (the kernel's header, the EFI loader on an ISO or disk). A guest of
    /// another architecture than the host's runs under TCG emulation: slow, but it works.
    /// </summary>
    public GuestArchitecture Architecture { get; init; }

    /// <summary>
    /// Whether QEMU loads an x86_64 ISO's or BIOS disk's (raw, qcow2) kernel, initrd and command
    /// line itself, as its ISOLINUX or SYSLINUX configuration names them, skipping the firmware's
    /// disk reads and the boot loader: about half a second less per cold boot under TCG. The guest
    /// sees the same command line (with the boot loader's <c>BOOT_IMAGE=</c> and <c>initrd=</c>)
    /// and the same disks.
    /// <list type="bullet">
    /// <item><description>Null (the default): only where that changes nothing else, i.e. the
    /// configuration just starts its entry (LinuxKit's <c>iso-bios</c>, <c>raw-bios</c> and
    /// <c>qcow2-bios</c> outputs); an image whose loader does more (a prompt, a menu, a message,
    /// output on the serial line), or that cannot be read so (UEFI, arm64, GRUB, VMDK), boots
    /// through its firmware. Hyperkit always boots through its firmware.</description></item>
    /// <item><description>True: always; an image whose entry cannot be read fails at once with
    /// the reason. QEMU only.</description></item>
    /// <item><description>False: never; the firmware and the boot loader start the image.</description></item>
    /// </list>
    /// Kernel+initrd images boot directly in any case.
    /// </summary>
    public bool? DirectKernelBoot { get; init; }

    /// <summary>How long the VM may take to answer over SSH (default 2 minutes).</summary>
    public TimeSpan BootTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Checks every option; the error names the option and the reason.</summary>
    /// <exception cref="LinuxKitException">An option is out of range.</exception>
    public void Validate()
    {
        if (Name is not null && (Name.Length == 0 || Name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))))
            throw new LinuxKitException($"RunOptions.Name '{Name}' is not valid: use letters, digits, '-', '_' and '.'.");
        // Wherever a VM is named, an id is taken first: a name that reads as one would stop,
        // or be stopped as, another VM.
        if (Name is not null && State.StateStore.IsId(Name))
            throw new LinuxKitException($"RunOptions.Name '{Name}' reads as a VM id (8 hexadecimal digits), and ids are matched before names: choose a name that is not one.");
        if (Memory < 64 || Memory > 1024 * 1024)
            throw new LinuxKitException($"RunOptions.Memory is {Memory} MB: give between 64 and 1048576 MB.");
        if (Cpus < 1 || Cpus > 255)
            throw new LinuxKitException($"RunOptions.Cpus is {Cpus}: give between 1 and 255.");
        if (SshPort is < 0 or > 65535)
            throw new LinuxKitException($"RunOptions.SshPort is {SshPort}: give a TCP port (1-65535), or 0 for a free one.");
        foreach (var (host, guest) in Ports)
        {
            if (host is < 0 or > 65535 || guest is < 1 or > 65535)
                throw new LinuxKitException($"RunOptions.Ports has {host}:{guest}: host ports are 0-65535 (0 picks a free one), guest ports 1-65535.");
        }
        var fixedHosts = Ports.Where(p => p.HostPort != 0).Select(p => p.HostPort).Append(SshPort).Where(p => p != 0).ToList();
        if (fixedHosts.Distinct().Count() != fixedHosts.Count)
            throw new LinuxKitException("RunOptions.Ports (with SshPort) name the same host port twice.");
        // A user name as POSIX portably spells one: never an option to the SSH client ("-oProxyCommand=...")
        // nor a host or port ("user@host").
        if (string.IsNullOrEmpty(SshUser) || SshUser.Length > 32 || SshUser[0] == '-'
            || SshUser.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')))
            throw new LinuxKitException($"RunOptions.SshUser '{SshUser}' is not a user name: use up to 32 letters, digits, '.', '_' and '-', not starting with '-'.");
        if (!Enum.IsDefined(StopMode))
            throw new LinuxKitException($"RunOptions.StopMode is {(int)StopMode}: use StopMode.Fast or StopMode.Graceful.");
        if (!Enum.IsDefined(Firmware))
            throw new LinuxKitException($"RunOptions.Firmware is {(int)Firmware}: use Firmware.Auto, Bios or Uefi.");
        if (!Enum.IsDefined(Architecture))
            throw new LinuxKitException($"RunOptions.Architecture is {(int)Architecture}: use GuestArchitecture.Auto, X64 or Arm64.");
        if (BootTimeout <= TimeSpan.Zero)
            throw new LinuxKitException($"RunOptions.BootTimeout is {BootTimeout}: give a positive time.");
        foreach (var (host, guest) in Volumes)
        {
            if (!Directory.Exists(host))
                throw new LinuxKitException($"RunOptions.Volumes: host folder '{host}' does not exist.");
            if (!guest.StartsWith('/') || guest.Any(char.IsWhiteSpace))
                throw new LinuxKitException($"RunOptions.Volumes: guest path '{guest}' must be absolute and contain no spaces.");
        }
    }
}
