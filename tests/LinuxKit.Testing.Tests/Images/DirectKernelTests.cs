using System.IO.Compression;
using System.Text;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tests.Images;

/// <summary>
/// The kernel, initrd and command line found in ISOs and BIOS disks made by real tools
/// (BootLoaderImages/make.sh): LinuxKit's layouts, plain ISO 9660 names, FAT12, FAT16, FAT32,
/// a qcow2.
/// </summary>
public sealed class DirectKernelTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("lkt-direct-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    // What make.sh writes as the kernel and the initrd.
    private static readonly byte[] Kernel = Pattern(70000, 7, kernel: true);
    private static readonly byte[] Initrd = Pattern(30000, 13, kernel: false);

    private static byte[] Pattern(int length, int seed, bool kernel)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++) bytes[i] = (byte)(((i * seed) + 3) % 251);
        if (kernel) "HdrS"u8.CopyTo(bytes.AsSpan(0x202));
        return bytes;
    }

    internal static byte[] Fixture(string name)
    {
        using var gzip = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "Images", "BootLoaderImages", name + ".gz")), CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        gzip.CopyTo(bytes);
        return bytes.ToArray();
    }

    private static byte[] Content(VirtualDisk disk, IReadOnlyList<FileRun> runs) => runs.SelectMany(r => disk.Read(r.Offset, (int)r.Length)).ToArray();

    // LinuxKit's iso-bios layout (Rock Ridge names, /vmlinuz64, an INITRD line), and an ISO with
    // plain ISO 9660 names only (KERNEL.;1, read without case or version) whose paths are
    // relative to its configuration's folder.
    [Theory]
    [InlineData("linuxkit-bios.iso", "isolinux/isolinux.cfg on the ISO", "BOOT_IMAGE=/vmlinuz64 console=ttyS0 page_poison=1 initrd=/initrd.img")]
    [InlineData("plain-names.iso", "boot/isolinux/isolinux.cfg on the ISO", "BOOT_IMAGE=kernel initrd=initrd.img console=ttyS0")]
    public void An_isos_isolinux_entry_gives_its_kernel_initrd_and_the_command_line_isolinux_passes(string name, string source, string commandLine)
    {
        var disk = VirtualDisk.Of(Fixture(name));
        var entry = DirectKernel.Read(disk, ImageFormat.Iso);

        Assert.Equal((source, commandLine), (entry.Source, entry.CommandLine));
        Assert.Equal(Kernel, Content(disk, entry.Kernel));
        Assert.Equal(Initrd, Content(disk, entry.Initrd!));
    }

    [Theory]
    [InlineData("fat12.img")]
    [InlineData("fat16.img")]
    [InlineData("fat32.img")]
    public void LinuxKits_raw_bios_layout_is_read_from_its_active_partitions_file_system(string name)
    {
        var disk = VirtualDisk.Of(Fixture(name));
        var entry = DirectKernel.Read(disk, ImageFormat.Raw);

        Assert.Equal("syslinux.cfg in partition 1", entry.Source);
        Assert.Equal("BOOT_IMAGE=/kernel console=ttyS0 initrd=/initrd.img", entry.CommandLine);
        Assert.Equal(Kernel, Content(disk, entry.Kernel));
        Assert.Equal(Initrd, Content(disk, entry.Initrd!));
    }

    [Fact]
    public async Task A_qcow2_disk_is_read_through_its_tables_and_its_files_copied_out_whole()
    {
        var image = Path.Combine(_folder, "os.qcow2");
        File.WriteAllBytes(image, Fixture("fat16.qcow2"));
        var resolved = DirectKernel.Apply(LinuxKitImage.Resolve(image), new FirmwareChoice(GuestArchitecture.X64, Uefi: false, Reason: null));
        var files = new VmFiles("0123abcd", Path.Combine(_folder, "vm"));
        Directory.CreateDirectory(files.Directory);

        await resolved.DirectKernel!.ExtractAsync(resolved, files, CancellationToken.None);

        Assert.Equal(Kernel, File.ReadAllBytes(files.Kernel));
        Assert.Equal(Initrd, File.ReadAllBytes(files.Initrd));
    }

    [Fact]
    public void A_configuration_naming_a_kernel_the_image_lacks_is_refused_with_both_named()
    {
        var bytes = Fixture("linuxkit-bios.iso");
        Replace(bytes, "KERNEL /vmlinuz64", "KERNEL /vmlinuz65");
        var error = Assert.Throws<InvalidDataException>(() => DirectKernel.Read(VirtualDisk.Of(bytes), ImageFormat.Iso));
        Assert.Equal("isolinux/isolinux.cfg on the ISO boots /vmlinuz65, which the ISO 9660 file system does not hold", error.Message);
    }

    [Fact]
    public void A_disk_whose_partition_holds_no_FAT_says_so_per_partition()
    {
        var bytes = Fixture("fat16.img");
        bytes.AsSpan(1 << 20, 512).Clear(); // the partition's boot sector
        var error = Assert.Throws<InvalidDataException>(() => DirectKernel.Read(VirtualDisk.Of(bytes), ImageFormat.Raw));
        Assert.Equal("partition 1 holds no FAT file system", error.Message);
    }

    [Fact]
    public void Images_that_cannot_be_booted_directly_fail_at_once_naming_the_image_the_reason_and_the_way_out()
    {
        var iso = Path.Combine(_folder, "os.iso");
        File.WriteAllBytes(iso, Fixture("linuxkit-bios.iso"));
        var image = LinuxKitImage.Resolve(iso);

        var uefi = Assert.Throws<LinuxKitException>(() => DirectKernel.Apply(image, new FirmwareChoice(GuestArchitecture.X64, Uefi: true, Reason: null)));
        var vmdk = Assert.Throws<LinuxKitException>(() => DirectKernel.Apply(image with { Format = ImageFormat.Vmdk }, new FirmwareChoice(GuestArchitecture.X64, Uefi: false, Reason: null)));

        Assert.Equal($"RunOptions.DirectKernelBoot cannot boot '{iso}' directly: it boots under UEFI, and only ISOLINUX/SYSLINUX images booted under BIOS are read. Leave DirectKernelBoot unset or false to boot it through its firmware and boot loader.", uefi.Message);
        Assert.Contains("the files inside a Vmdk image are not read (convert it to qcow2 with qemu-img convert)", vmdk.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void By_default_a_configuration_that_only_starts_its_entry_is_booted_directly()
    {
        var iso = Path.Combine(_folder, "os.iso");
        File.WriteAllBytes(iso, Fixture("linuxkit-bios.iso"));

        var image = DirectKernel.ApplyWhereUnchanged(LinuxKitImage.Resolve(iso), Bios, out var firmwareBecause);

        Assert.Null(firmwareBecause);
        Assert.Equal("BOOT_IMAGE=/vmlinuz64 console=ttyS0 page_poison=1 initrd=/initrd.img", image.DirectKernel?.CommandLine);
    }

    [Fact]
    public void By_default_an_image_whose_boot_loader_does_more_or_cannot_be_read_boots_through_its_firmware_saying_why()
    {
        var (iso, bytes) = IsoWhoseLoaderSaysSomething();
        var image = LinuxKitImage.Resolve(iso);

        var says = DirectKernel.ApplyWhereUnchanged(image, Bios, out var saysWhy);
        var uefi = DirectKernel.ApplyWhereUnchanged(image, new FirmwareChoice(GuestArchitecture.X64, Uefi: true, Reason: null), out var uefiWhy);
        var vmdk = DirectKernel.ApplyWhereUnchanged(image with { Format = ImageFormat.Vmdk }, Bios, out var vmdkWhy);
        Replace(bytes, "KERNEL /vmlinuz64", "KERNEL /vmlinuz65");
        File.WriteAllBytes(iso, bytes);
        var missing = DirectKernel.ApplyWhereUnchanged(image, Bios, out var missingWhy);

        Assert.All(new[] { says, uefi, vmdk, missing }, i => Assert.Null(i.DirectKernel));
        Assert.Equal("isolinux/isolinux.cfg on the ISO does more than start its kernel ('SAY LinuxKit')", saysWhy);
        Assert.Equal("it boots under UEFI", uefiWhy);
        Assert.Equal("the files inside a Vmdk image are not read", vmdkWhy);
        Assert.Equal("isolinux/isolinux.cfg on the ISO boots /vmlinuz65, which the ISO 9660 file system does not hold", missingWhy);
    }

    [Fact]
    public void Asked_for_a_direct_boot_an_image_whose_boot_loader_does_more_is_booted_directly_all_the_same()
    {
        var (iso, _) = IsoWhoseLoaderSaysSomething();

        var image = DirectKernel.Apply(LinuxKitImage.Resolve(iso), Bios);

        Assert.Equal("SAY LinuxKit", image.DirectKernel?.BootLoaderDoesMore);
    }

    // LinuxKit's ISO whose ISOLINUX also prints a line: "SAY LinuxKit" on a line of its own,
    // where "page_poison=1" was (the same length, so the ISO's tables still hold).
    private (string Path, byte[] Bytes) IsoWhoseLoaderSaysSomething()
    {
        var iso = Path.Combine(_folder, "os.iso");
        var bytes = Fixture("linuxkit-bios.iso");
        Replace(bytes, "page_poison=1", "\nSAY LinuxKit");
        File.WriteAllBytes(iso, bytes);
        return (iso, bytes);
    }

    private static readonly FirmwareChoice Bios = new(GuestArchitecture.X64, Uefi: false, Reason: null);

    [Fact]
    public void A_kernel_initrd_image_is_already_booted_directly_and_stays_as_it_is()
    {
        var image = new LinuxKitImage { Format = ImageFormat.KernelInitrd, Path = "/images/os-kernel", Initrd = "/images/os-initrd.img" };
        Assert.Same(image, DirectKernel.Apply(image, new FirmwareChoice(GuestArchitecture.X64, Uefi: false, Reason: null)));
    }

    private static void Replace(byte[] bytes, string from, string to)
    {
        var at = bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(from));
        Assert.True(at >= 0, $"'{from}' is not in the image");
        Encoding.ASCII.GetBytes(to).CopyTo(bytes.AsSpan(at));
    }
}
