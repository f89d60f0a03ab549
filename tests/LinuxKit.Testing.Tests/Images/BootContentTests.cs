using System.Buffers.Binary;
using System.IO.Compression;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Tests.Images;

/// <summary>How an image's bytes say which firmware and architecture boot it.</summary>
public class BootContentTests
{
    private const int Cd = 2048;

    [Fact]
    public void An_x86_bzImage_is_x64_by_its_setup_header()
    {
        var kernel = new byte[4096];
        "HdrS"u8.CopyTo(kernel.AsSpan(0x202));
        Assert.Equal(GuestArchitecture.X64, KernelHeader.Architecture(kernel));
    }

    [Fact]
    public void An_arm64_Image_is_arm64_by_its_magic_plain_or_gzip_compressed()
    {
        var kernel = Arm64Image();
        Assert.Equal(GuestArchitecture.Arm64, KernelHeader.Architecture(kernel));
        Assert.Equal(GuestArchitecture.Arm64, KernelHeader.Architecture(Gzip(kernel)));
    }

    [Fact]
    public void An_arm64_EFI_zboot_image_is_arm64_by_its_PE_machine()
    {
        var kernel = new byte[512];
        "MZ"u8.CopyTo(kernel);
        "zimg"u8.CopyTo(kernel.AsSpan(4));
        BinaryPrimitives.WriteInt32LittleEndian(kernel.AsSpan(0x3C), 0x40);
        "PE\0\0"u8.CopyTo(kernel.AsSpan(0x40));
        BinaryPrimitives.WriteUInt16LittleEndian(kernel.AsSpan(0x44), 0xAA64);
        Assert.Equal(GuestArchitecture.Arm64, KernelHeader.Architecture(kernel));
    }

    [Fact]
    public void Other_bytes_and_other_gzip_content_are_no_kernel()
    {
        Assert.Null(KernelHeader.Architecture(new byte[4096]));
        Assert.Null(KernelHeader.Architecture(Gzip("070701"u8.ToArray())));
        Assert.Null(KernelHeader.Architecture([0x1F, 0x8B, 0x08, 0x00, 0x01])); // a damaged gzip stream
    }

    [Theory]
    [InlineData(true, false, null, true, false, GuestArchitecture.X64)]
    [InlineData(false, true, "BOOTX64 EFI", false, true, GuestArchitecture.X64)]
    [InlineData(true, true, "BOOTX64 EFI", true, true, GuestArchitecture.X64)]
    [InlineData(false, true, "BOOTAA64EFI", false, true, GuestArchitecture.Arm64)]
    public void An_ISO_boots_as_its_El_Torito_entries_and_its_EFI_loader_say(bool biosEntry, bool efiEntry, string? loader, bool bios, bool uefi, GuestArchitecture architecture)
    {
        var content = BootContent.Inspect(ImageFormat.Iso, VirtualDisk.Of(Iso(biosEntry, efiEntry, loader)));
        Assert.Equal((bios, uefi, architecture), (content.Bios, content.Uefi, content.Architecture));
    }

    [Fact]
    public void An_ISO_without_a_boot_catalog_boots_nothing_and_says_so()
    {
        var content = BootContent.Inspect(ImageFormat.Iso, VirtualDisk.Of(new byte[40 * Cd]));
        Assert.False(content.Bios || content.Uefi);
        Assert.Contains("no El Torito boot catalog", content.Evidence, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, false, null, true, false, GuestArchitecture.X64)]         // MBR with syslinux: raw-bios
    [InlineData(false, true, "BOOTX64 EFI", false, true, GuestArchitecture.X64)] // protective MBR, GPT, ESP: raw-efi
    [InlineData(true, true, "BOOTX64 EFI", true, true, GuestArchitecture.X64)]   // hybrid
    [InlineData(false, true, "BOOTAA64EFI", false, true, GuestArchitecture.Arm64)]
    public void A_disk_boots_as_its_boot_code_and_EFI_System_Partition_say(bool bootCode, bool gpt, string? loader, bool bios, bool uefi, GuestArchitecture architecture)
    {
        var content = BootContent.Inspect(ImageFormat.Raw, VirtualDisk.Of(Disk(bootCode, gpt, loader)));
        Assert.Equal((bios, uefi, architecture), (content.Bios, content.Uefi, content.Architecture));
    }

    private static LinuxKitImage Image(ImageFormat format, BootContent content) => new() { Format = format, Path = "/images/os", Content = content };

    [Fact]
    public void Auto_prefers_BIOS_when_both_boot_and_UEFI_when_only_UEFI_does()
    {
        var both = FirmwareChoice.Decide(Image(ImageFormat.Iso, new BootContent(GuestArchitecture.X64, true, true, "both")), Firmware.Auto, GuestArchitecture.Auto);
        var uefiOnly = FirmwareChoice.Decide(Image(ImageFormat.Qcow2, new BootContent(GuestArchitecture.X64, false, true, "ESP")), Firmware.Auto, GuestArchitecture.Auto);
        var biosOnly = FirmwareChoice.Decide(Image(ImageFormat.Qcow2, new BootContent(GuestArchitecture.X64, true, false, "MBR")), Firmware.Auto, GuestArchitecture.Auto);

        Assert.False(both.Uefi);
        Assert.Contains("BIOS, which is faster", both.Reason, StringComparison.Ordinal);
        Assert.True(uefiOnly.Uefi);
        Assert.Contains("booting under UEFI", uefiOnly.Reason, StringComparison.Ordinal);
        Assert.Equal(new FirmwareChoice(GuestArchitecture.X64, false, null), biosOnly);
    }

    [Fact]
    public void An_arm64_disk_boots_under_UEFI_and_an_arm64_kernel_directly()
    {
        var disk = FirmwareChoice.Decide(Image(ImageFormat.Raw, new BootContent(GuestArchitecture.Arm64, false, true, "ESP")), Firmware.Auto, GuestArchitecture.Auto);
        var kernel = FirmwareChoice.Decide(Image(ImageFormat.KernelInitrd, BootContent.OfKernel(GuestArchitecture.Arm64)), Firmware.Auto, GuestArchitecture.Auto);
        Assert.Equal((GuestArchitecture.Arm64, true), (disk.Architecture, disk.Uefi));
        Assert.Equal((GuestArchitecture.Arm64, false), (kernel.Architecture, kernel.Uefi));
    }

    [Fact]
    public void The_callers_firmware_and_architecture_win_but_BIOS_on_arm64_is_refused_by_name()
    {
        var bios = Image(ImageFormat.Iso, new BootContent(GuestArchitecture.X64, true, false, "MBR"));
        Assert.True(FirmwareChoice.Decide(bios, Firmware.Uefi, GuestArchitecture.Auto).Uefi);
        Assert.Equal(GuestArchitecture.Arm64, FirmwareChoice.Decide(bios, Firmware.Uefi, GuestArchitecture.Arm64).Architecture);
        var error = Assert.Throws<LinuxKitException>(() => FirmwareChoice.Decide(bios, Firmware.Bios, GuestArchitecture.Arm64));
        Assert.Contains("arm64 has no BIOS", error.Message, StringComparison.Ordinal);
    }

    private static byte[] Arm64Image()
    {
        var kernel = new byte[4096];
        "MZ"u8.CopyTo(kernel);
        "ARMd"u8.CopyTo(kernel.AsSpan(0x38));
        return kernel;
    }

    private static byte[] Gzip(byte[] data)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest)) gzip.Write(data);
        return output.ToArray();
    }

    // An ISO as xorriso lays one out: the boot record in sector 17, the catalog in sector 20,
    // the EFI image (a FAT holding the loader) in sector 30.
    private static byte[] Iso(bool biosEntry, bool efiEntry, string? loader)
    {
        var iso = new byte[64 * Cd];
        var record = iso.AsSpan(17 * Cd);
        record[0] = 0;
        "CD001"u8.CopyTo(record[1..]);
        record[6] = 1;
        "EL TORITO SPECIFICATION"u8.CopyTo(record[7..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record[0x47..], 20);
        var catalog = iso.AsSpan(20 * Cd);
        catalog[0] = 1;
        catalog[1] = biosEntry ? (byte)0 : (byte)0xEF;
        catalog[30] = 0x55;
        catalog[31] = 0xAA;
        void Entry(Span<byte> entry, uint lba, ushort sectors)
        {
            entry[0] = 0x88;
            BinaryPrimitives.WriteUInt16LittleEndian(entry[6..], sectors);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[8..], lba);
        }
        if (biosEntry)
        {
            Entry(catalog.Slice(32, 32), 25, 4);
            if (efiEntry)
            {
                catalog[64] = 0x91;
                catalog[65] = 0xEF;
                BinaryPrimitives.WriteUInt16LittleEndian(catalog[66..], 1);
                Entry(catalog.Slice(96, 32), 30, 16);
            }
        }
        else if (efiEntry)
        {
            Entry(catalog.Slice(32, 32), 30, 16);
        }
        if (loader is not null) System.Text.Encoding.ASCII.GetBytes(loader).CopyTo(iso.AsSpan((30 * Cd) + 1024));
        return iso;
    }

    private static byte[] Disk(bool bootCode, bool gpt, string? loader)
    {
        var disk = new byte[4 << 20];
        if (bootCode) disk[0] = 0xEB; // a jump, as every boot sector's code starts
        disk[510] = 0x55;
        disk[511] = 0xAA;
        const long espFirst = 2048, espLast = 4095;
        if (gpt)
        {
            disk[446 + 4] = 0xEE; // the protective partition
            "EFI PART"u8.CopyTo(disk.AsSpan(512));
            BinaryPrimitives.WriteUInt64LittleEndian(disk.AsSpan(512 + 72), 2);
            BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(512 + 80), 128);
            BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(512 + 84), 128);
            byte[] esp = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];
            var entry = disk.AsSpan(1024 + 128); // the second entry: the ESP need not come first
            esp.CopyTo(entry);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[32..], espFirst);
            BinaryPrimitives.WriteUInt64LittleEndian(entry[40..], espLast);
        }
        else
        {
            disk[446] = 0x80;
            disk[446 + 4] = 0x0E;
            BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(446 + 8), (uint)espFirst);
            BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(446 + 12), (uint)(espLast - espFirst + 1));
        }
        if (loader is not null) System.Text.Encoding.ASCII.GetBytes(loader).CopyTo(disk.AsSpan((int)(espFirst * 512) + 4096));
        return disk;
    }
}
