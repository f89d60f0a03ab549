using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Tests.Images;

public sealed class ImageResolutionTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-images-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string Write(string name, byte[] content)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    internal static byte[] IsoBytes(int totalBlocks = 20)
    {
        var data = new byte[totalBlocks * 2048];
        data[0x8000] = 1;
        "CD001"u8.CopyTo(data.AsSpan(0x8001));
        BitConverter.GetBytes(totalBlocks).CopyTo(data, 0x8000 + 80);
        BitConverter.GetBytes((short)2048).CopyTo(data, 0x8000 + 128);
        return data;
    }

    private static byte[] WithBytes(int length, int offset, params byte[] bytes)
    {
        var data = new byte[length];
        bytes.CopyTo(data, offset);
        return data;
    }

    internal static byte[] KernelBytes() => WithBytes(4096, 0x202, "HdrS"u8.ToArray());

    [Fact]
    public void Iso_is_detected_by_its_volume_descriptor() =>
        Assert.Equal(ImageFormat.Iso, LinuxKitImage.Resolve(Write("os.iso", IsoBytes())).Format);

    // A real, empty disk image of the format, as qemu-img makes it.
    internal static byte[] DiskBytes(string format, string? subformat = null)
    {
        var path = Path.Combine(Path.GetTempPath(), $"lkt-disk-{Guid.NewGuid():N}.{format}");
        string[] options = subformat is null ? [] : ["-o", $"subformat={subformat}"];
        using (var qemuImg = System.Diagnostics.Process.Start("qemu-img", ["create", "-q", "-f", format, .. options, path, "64M"]))
        {
            qemuImg.WaitForExit();
            Assert.Equal(0, qemuImg.ExitCode);
        }
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }

    [Fact]
    public void Qcow2_is_detected_by_its_magic() =>
        Assert.Equal(ImageFormat.Qcow2, LinuxKitImage.Resolve(Write("os.qcow2", DiskBytes("qcow2"))).Format);

    [Theory]
    [InlineData("monolithicSparse")]
    [InlineData("streamOptimized")]
    public void Sparse_vmdk_is_detected_by_its_magic(string subformat) =>
        Assert.Equal(ImageFormat.Vmdk, LinuxKitImage.Resolve(Write("os.vmdk", DiskBytes("vmdk", subformat))).Format);

    [Theory]
    [InlineData("qcow2", 50, "ends inside its qcow2 header")]
    [InlineData("qcow2", 1000, "past the end of the file (1000 bytes)")]
    [InlineData("qcow2", 4096, "past the end of the file (4096 bytes): the file is truncated or damaged")]
    [InlineData("vmdk", 1000, "past the end of the file (1000 bytes)")]
    public void A_truncated_disk_image_is_refused_naming_the_image_and_the_table_past_its_end(string format, int keep, string reason)
    {
        var whole = DiskBytes(format);
        var path = Write($"truncated.{format}", whole[..Math.Min(keep, whole.Length)]);

        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Vmdk_descriptor_file_is_detected() =>
        Assert.Equal(ImageFormat.Vmdk, LinuxKitImage.Resolve(Write("os.vmdk", "# Disk DescriptorFile\nversion=1\n"u8.ToArray())).Format);

    [Fact]
    public void Raw_disk_is_detected_by_its_boot_signature() =>
        Assert.Equal(ImageFormat.Raw, LinuxKitImage.Resolve(Write("os-bios.img", WithBytes(1024, 510, 0x55, 0xAA))).Format);

    [Fact]
    public void Raw_gpt_disk_is_detected() =>
        Assert.Equal(ImageFormat.Raw, LinuxKitImage.Resolve(Write("os-efi.img", WithBytes(1024, 512, "EFI PART"u8.ToArray()))).Format);

    [Fact]
    public void Content_wins_over_a_misleading_extension()
    {
        var image = LinuxKitImage.Resolve(Write("really-an-iso.qcow2", IsoBytes()));
        Assert.Equal(ImageFormat.Iso, image.Format);
    }

    [Fact]
    public void Hybrid_iso_with_an_mbr_is_an_iso()
    {
        var data = IsoBytes();
        data[510] = 0x55;
        data[511] = 0xAA;
        Assert.Equal(ImageFormat.Iso, LinuxKitImage.Resolve(Write("hybrid.img", data)).Format);
    }

    [Fact]
    public void Unknown_content_is_refused_with_the_file_name_and_its_first_bytes()
    {
        var path = Write("notes.qcow2", "hello world, not an image"u8.ToArray());
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("68656C6C6F20776F", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Empty_file_is_refused_as_empty()
    {
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(Write("empty.iso", [])));
        Assert.Contains("empty", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_iso_is_refused_with_expected_and_actual_sizes()
    {
        var full = IsoBytes(totalBlocks: 40);
        var path = Write("cut.iso", full[..(20 * 2048)]);
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(path));
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
        Assert.Contains("81920", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_file_names_the_path_and_the_prefix_it_also_tried()
    {
        var path = Path.Combine(_dir.FullName, "nothing");
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(path));
        Assert.Contains(path + "-kernel", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Directory_is_refused()
    {
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(_dir.FullName));
        Assert.Contains("directory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kernel_initrd_prefix_resolves_kernel_initrd_and_cmdline()
    {
        Write("os-kernel", KernelBytes());
        Write("os-initrd.img", WithBytes(64, 0, 0x1F, 0x8B));
        File.WriteAllText(Path.Combine(_dir.FullName, "os-cmdline"), "console=ttyS0 quiet\n");

        var prefix = Path.Combine(_dir.FullName, "os");
        var image = LinuxKitImage.Resolve(prefix);
        Assert.Equal(ImageFormat.KernelInitrd, image.Format);
        Assert.Equal(prefix + "-kernel", image.Path);
        Assert.Equal(prefix + "-initrd.img", image.Initrd);
        Assert.Equal("console=ttyS0 quiet", image.CommandLine);

        Assert.Equal(image, LinuxKitImage.Resolve(prefix + "-kernel"));
    }

    [Fact]
    public void Kernel_without_initrd_names_the_missing_file()
    {
        Write("os-kernel", KernelBytes());
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(Path.Combine(_dir.FullName, "os")));
        Assert.Contains("os-initrd.img", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Initrd_that_is_no_archive_is_refused()
    {
        Write("os-kernel", KernelBytes());
        Write("os-initrd.img", "garbage"u8.ToArray());
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(Path.Combine(_dir.FullName, "os")));
        Assert.Contains("cpio", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Kernel_prefix_whose_kernel_is_not_a_kernel_is_refused()
    {
        Write("os-kernel", "text"u8.ToArray());
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(Path.Combine(_dir.FullName, "os")));
        Assert.Contains("bzImage", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bare_kernel_under_another_name_asks_for_the_prefix()
    {
        var path = Write("vmlinuz", KernelBytes());
        var e = Assert.Throws<LinuxKitException>(() => LinuxKitImage.Resolve(path));
        Assert.Contains("NAME-kernel", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_cmdline_defaults_to_a_serial_console()
    {
        Write("os-kernel", KernelBytes());
        Write("os-initrd.img", WithBytes(64, 0, 0x1F, 0x8B));
        Assert.Equal("console=ttyS0", LinuxKitImage.Resolve(Path.Combine(_dir.FullName, "os")).CommandLine);
    }
}
