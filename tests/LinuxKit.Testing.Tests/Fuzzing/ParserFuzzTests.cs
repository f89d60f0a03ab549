using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;

namespace LinuxKit.Testing.Tests.Fuzzing;

/// <summary>
/// Every parser of bytes the SDK does not control (image files, VM and template records) under a
/// seeded mutation loop: any input ends in a result or a <see cref="LinuxKitException"/>, never
/// another exception, within a bounded time. The seed is fixed, so a failure reproduces; set
/// LINUXKIT_FUZZ_SECONDS for a longer pass by hand (with LINUXKIT_FUZZ_SEED for other inputs).
/// Every crash found is kept below as a unit case.
/// </summary>
public class ParserFuzzTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("LINUXKIT_FUZZ_SECONDS"), out var seconds) ? seconds : 4);

    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("LINUXKIT_FUZZ_SEED"), out var seed) ? seed : 20261203;

    // One input may take this long at most: far beyond any parse, short of a hang.
    private static readonly TimeSpan PerInput = TimeSpan.FromSeconds(2);

    [Fact]
    public Task Image_signatures_kernel_headers_and_disk_headers_accept_any_bytes() => FuzzAsync(
        [Qcow2Header(), VmdkHeader(), Kernel("HdrS", 0x202), Kernel("ARMd", 0x38), Gzip(Kernel("ARMd", 0x38)), Mbr(), Iso()],
        input =>
        {
            var format = ImageSignature.Detect(input);
            _ = ImageSignature.Describe(input);
            _ = KernelHeader.Architecture(input);
            _ = DiskStructure.Flaw(format == ImageFormat.Unknown ? ImageFormat.Qcow2 : format, input, input.Length);
            _ = DiskStructure.Flaw(ImageFormat.Vmdk, input, input.Length);
        });

    [Fact]
    public Task El_Torito_catalogs_and_partition_tables_accept_any_bytes() => FuzzAsync(
        [Iso(), Mbr(), Gpt()],
        input =>
        {
            _ = BootContent.Inspect(ImageFormat.Iso, VirtualDisk.Of(input));
            _ = BootContent.Inspect(ImageFormat.Raw, VirtualDisk.Of(input));
        });

    [Fact]
    public Task Iso_9660_and_FAT_file_systems_and_boot_menus_accept_any_bytes() => FuzzAsync(
        // The FAT12 disk up to just past its kernel's first clusters: every table and directory,
        // and a file the disk ends inside.
        [Images.DirectKernelTests.Fixture("linuxkit-bios.iso"), Images.DirectKernelTests.Fixture("plain-names.iso"), Images.DirectKernelTests.Fixture("fat12.img")[..((1 << 20) + (64 << 10))]],
        input =>
        {
            foreach (var format in new[] { ImageFormat.Iso, ImageFormat.Raw })
            {
                try
                {
                    _ = DirectKernel.Read(VirtualDisk.Of(input), format);
                }
                catch (InvalidDataException)
                {
                    // How DirectKernel.Read says why (DirectKernel.Apply words it as a LinuxKitException).
                }
            }
        });

    [Fact]
    public Task Qcow2_tables_accept_any_bytes() => FuzzAsync(
        [Qcow2Image()],
        input =>
        {
            using var disk = Qcow2Disk.Open(new MemoryStream(input));
            if (disk is not null) _ = BootContent.Inspect(ImageFormat.Qcow2, disk);
        });

    [Fact]
    public Task Image_files_resolve_or_are_refused_with_the_reason() => FuzzAsync(
        [Iso(), Gpt(), Qcow2Image(), VmdkHeader()],
        input =>
        {
            var path = Path.Combine(Path.GetTempPath(), $"lkt-fuzz-{Environment.ProcessId}-{Environment.CurrentManagedThreadId}.img");
            File.WriteAllBytes(path, input);
            try
            {
                _ = LinuxKitImage.Resolve(path);
            }
            finally
            {
                File.Delete(path);
            }
        },
        iterationsLimit: 3000);

    [Fact]
    public Task Vm_records_load_as_a_record_or_as_damaged() => FuzzAsync(
        [Encoding.UTF8.GetBytes(RecordJson)],
        input =>
        {
            var root = Directory.CreateTempSubdirectory("lkt-fuzz-").FullName;
            try
            {
                var store = new StateStore(root);
                var id = "0123abcd";
                Directory.CreateDirectory(store.VmDirectory(id));
                File.WriteAllBytes(store.Files(id).Record, input);
                var record = store.Load(id);
                Assert.NotNull(record);
                _ = record.ToContainer();
            }
            finally
            {
                Directory.Delete(root, recursive: true);
            }
        },
        iterationsLimit: 3000,
        text: true);

    [Fact]
    public Task Template_records_are_used_or_rejected_with_the_reason() => FuzzAsync(
        [Encoding.UTF8.GetBytes(TemplateJson)],
        input =>
        {
            var root = Directory.CreateTempSubdirectory("lkt-fuzz-").FullName;
            try
            {
                var store = new TemplateStore(root);
                var folder = Path.Combine(root, Key);
                Directory.CreateDirectory(folder);
                File.WriteAllBytes(Path.Combine(folder, "template.json"), input);
                File.WriteAllBytes(Path.Combine(root, Key + ".failed"), input);
                _ = store.List();
                _ = store.Prune(dryRun: true);
                _ = store.Find(Key, out _);
                _ = store.FailureOf(Key);
            }
            finally
            {
                Directory.Delete(root, recursive: true);
            }
        },
        iterationsLimit: 3000,
        text: true);

    // Crashes found, kept as cases (the loop found the disk and qcow2 ones; the records' by hand).
    [Fact]
    public void A_kernel_whose_PE_header_offset_is_near_int_MaxValue_is_no_kernel()
    {
        var header = new byte[64];
        "MZ"u8.CopyTo(header);
        "zimg"u8.CopyTo(header.AsSpan(4));
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(0x3C), int.MaxValue - 2);
        Assert.Null(KernelHeader.Architecture(header));
    }

    [Fact]
    public void Partition_entries_and_qcow2_tables_said_to_lie_before_the_start_read_as_nothing()
    {
        var gpt = Gpt();
        BinaryPrimitives.WriteUInt64LittleEndian(gpt.AsSpan(512 + 72), ulong.MaxValue / 2); // entries "at" a negative offset
        Assert.False(BootContent.Inspect(ImageFormat.Raw, VirtualDisk.Of(gpt)).Uefi);

        var qcow2 = Qcow2Image();
        BinaryPrimitives.WriteUInt64BigEndian(qcow2.AsSpan(40), 0xA9BB_0000_0000_0000); // the L1 table "at" a negative offset
        using var disk = Qcow2Disk.Open(new MemoryStream(qcow2));
        Assert.Contains("boot records could not be read", BootContent.Inspect(ImageFormat.Qcow2, disk!).Evidence, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"Inputs\":null")]
    [InlineData("\"Inputs\":[null]")]
    [InlineData("\"Image\":null")]
    public void A_template_record_with_null_where_a_value_is_required_is_not_used(string field)
    {
        var json = TemplateJson.Replace("\"Inputs\":[\"a\",\"b\"]", field == "\"Image\":null" ? "\"Inputs\":[\"a\",\"b\"]" : field, StringComparison.Ordinal)
            .Replace("\"Image\":\"/images/os.qcow2\"", field == "\"Image\":null" ? field : "\"Image\":\"/images/os.qcow2\"", StringComparison.Ordinal);
        var root = Directory.CreateTempSubdirectory("lkt-fuzz-").FullName;
        try
        {
            var store = new TemplateStore(root);
            Directory.CreateDirectory(Path.Combine(root, Key));
            File.WriteAllText(Path.Combine(root, Key, "template.json"), json);
            File.WriteAllText(Path.Combine(root, Key + ".failed"), json);
            Assert.Empty(store.List());
            _ = store.Prune(dryRun: true);
            Assert.Contains("cannot be read", store.FailureOf(Key)?.Reason, StringComparison.Ordinal);
            Assert.Null(store.Find(Key, out var reason));
            Assert.NotNull(reason);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData("\"RuntimeFiles\":null")]
    [InlineData("\"RuntimeFiles\":[\"/state/vms/0123abcd/\\u0000\"]")]
    [InlineData("\"RuntimeFiles\":[null]")]
    public void A_record_with_null_or_unusable_file_names_loads_as_damaged(string runtimeFiles)
    {
        var json = RecordJson.Replace("\"RuntimeFiles\":[\"/state/vms/0123abcd/disk.qcow2\"]", runtimeFiles, StringComparison.Ordinal);
        var root = Directory.CreateTempSubdirectory("lkt-fuzz-").FullName;
        try
        {
            var store = new StateStore(root);
            Directory.CreateDirectory(store.VmDirectory("0123abcd"));
            File.WriteAllText(store.Files("0123abcd").Record, json);
            Assert.NotNull(store.Load("0123abcd")?.Damage);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task FuzzAsync(byte[][] seeds, Action<byte[]> parse, int iterationsLimit = int.MaxValue, bool text = false)
    {
        var random = new Random(Seed);
        var clock = Stopwatch.StartNew();
        var run = Task.Run(() =>
        {
            var iterations = 0;
            while (clock.Elapsed < Budget && iterations < iterationsLimit)
            {
                var input = Mutate(seeds[random.Next(seeds.Length)], random, text);
                var started = clock.Elapsed;
                try
                {
                    parse(input);
                }
                catch (LinuxKitException)
                {
                    // The one way a parser refuses: with the reason.
                }
                catch (Exception e)
                {
                    throw new Xunit.Sdk.XunitException($"Iteration {iterations} (seed {Seed}) threw {e.GetType().Name}: {e.Message}\ninput: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 4096)))}\n{e.StackTrace}");
                }
                if (clock.Elapsed - started > PerInput)
                    throw new Xunit.Sdk.XunitException($"Iteration {iterations} (seed {Seed}) took {(clock.Elapsed - started).TotalSeconds:0.0} s\ninput: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 4096)))}");
                iterations++;
            }
            Assert.True(iterations > 0);
        });
        await run.WaitAsync(Budget + PerInput + TimeSpan.FromSeconds(10));
    }

    private static readonly byte[] Interesting = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x20, 0x55, 0xAA, (byte)'"', (byte)'{', (byte)'[', (byte)'\\'];

    private static byte[] Mutate(byte[] seed, Random random, bool text)
    {
        var data = seed.ToList();
        var mutations = random.Next(1, 8);
        for (var m = 0; m < mutations && data.Count > 0; m++)
        {
            var at = random.Next(data.Count);
            switch (random.Next(text ? 7 : 6))
            {
                case 0: data[at] ^= (byte)(1 << random.Next(8)); break;
                case 1: data[at] = Interesting[random.Next(Interesting.Length)]; break;
                case 2:
                    // A 32- or 64-bit field set to an edge value.
                    var value = random.Next(4) switch { 0 => 0UL, 1 => ulong.MaxValue, 2 => (ulong)int.MaxValue, _ => (ulong)random.NextInt64() };
                    var width = random.Next(2) == 0 ? 4 : 8;
                    for (var i = 0; i < width && at + i < data.Count; i++) data[at + i] = (byte)(value >> (8 * i));
                    break;
                case 3: data.RemoveRange(at, data.Count - at); break; // truncated
                case 4: data.InsertRange(at, Enumerable.Repeat((byte)random.Next(256), random.Next(1, 64))); break;
                case 5: data.RemoveRange(at, Math.Min(random.Next(1, 64), data.Count - at)); break;
                default:
                    // Text: a token swapped for another JSON value.
                    var tokens = new[] { "null", "0", "-1", "\"\"", "[]", "{}", "\"../../etc\"", "1e400", "\"\\u0000\"", "true" };
                    data.InsertRange(at, Encoding.UTF8.GetBytes(tokens[random.Next(tokens.Length)]));
                    break;
            }
        }
        return [.. data];
    }

    private const string RecordJson = """
        {"Id":"0123abcd","Name":"web","Image":"/images/os.qcow2","Format":"Qcow2","Hypervisor":"Qemu","Status":"Running",
         "Pid":1234,"PidStartTime":"99","SshPort":40022,"Ports":{"8080":80},"Memory":256,"Cpus":1,"SshUser":"root",
         "SshKeyFile":"/state/vms/0123abcd/id_ecdsa","RuntimeFiles":["/state/vms/0123abcd/disk.qcow2"],"Volumes":{"/data":"/mnt"},
         "StartedAt":"2026-12-03T10:00:00+00:00","OwnerPid":1,"Template":"k1","StopMode":"Fast"}
        """;

    private const string Key = "0123456789abcdef";

    private const string TemplateJson = """
        {"Key":"0123456789abcdef","Image":"/images/os.qcow2","Memory":256,"Cpus":1,"CreatedAt":"2026-12-03T10:00:00+00:00",
         "HostKeyFingerprint":"SHA256:x","StateLength":10,"Inputs":["a","b"],"Reason":"r","FailedAt":"2026-12-03T10:00:00+00:00"}
        """;

    private static byte[] Kernel(string magic, int at)
    {
        var kernel = new byte[1024];
        "MZ"u8.CopyTo(kernel);
        Encoding.ASCII.GetBytes(magic).CopyTo(kernel, at);
        BinaryPrimitives.WriteInt32LittleEndian(kernel.AsSpan(0x3C), 0x40);
        "PE\0\0"u8.CopyTo(kernel.AsSpan(0x40));
        return kernel;
    }

    private static byte[] Gzip(byte[] data)
    {
        var output = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Fastest)) gzip.Write(data);
        return output.ToArray();
    }

    private static byte[] Qcow2Header()
    {
        var header = new byte[512];
        BinaryPrimitives.WriteUInt32BigEndian(header, 0x514649FB);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), 3);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(20), 16);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(24), 1 << 20);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(36), 1);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(40), 0x10000);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(48), 0x20000);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(56), 1);
        return header;
    }

    // A small qcow2 with 512-byte clusters: header, L1 at 512, L2 at 1024, data (an MBR) at 1536.
    private static byte[] Qcow2Image()
    {
        var image = new byte[2048];
        Qcow2Header().AsSpan(0, 112).CopyTo(image);
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(20), 9);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(24), 4096);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(40), 512);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(48), 0);
        BinaryPrimitives.WriteUInt32BigEndian(image.AsSpan(56), 0);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(512), 1024);
        BinaryPrimitives.WriteUInt64BigEndian(image.AsSpan(1024), 1536);
        Mbr().AsSpan(0, 512).CopyTo(image.AsSpan(1536));
        return image;
    }

    private static byte[] VmdkHeader()
    {
        var header = new byte[1536];
        "KDMV"u8.CopyTo(header);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(28), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(36), 1);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(56), 2);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(64), 3);
        return header;
    }

    private static byte[] Mbr()
    {
        var disk = new byte[64 * 1024];
        disk[0] = 0xEB;
        disk[446 + 4] = 0xEF;
        BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(446 + 8), 8);
        BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(446 + 12), 100);
        disk[510] = 0x55;
        disk[511] = 0xAA;
        "BOOTX64 EFI"u8.CopyTo(disk.AsSpan(8 * 512 + 64));
        return disk;
    }

    private static byte[] Gpt()
    {
        var disk = Mbr();
        disk[0] = 0;
        "EFI PART"u8.CopyTo(disk.AsSpan(512));
        BinaryPrimitives.WriteUInt64LittleEndian(disk.AsSpan(512 + 72), 2);
        BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(512 + 80), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(512 + 84), 128);
        byte[] esp = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];
        esp.CopyTo(disk.AsSpan(1024));
        BinaryPrimitives.WriteUInt64LittleEndian(disk.AsSpan(1024 + 32), 8);
        BinaryPrimitives.WriteUInt64LittleEndian(disk.AsSpan(1024 + 40), 107);
        return disk;
    }

    private static byte[] Iso()
    {
        var iso = new byte[24 * 2048];
        "CD001"u8.CopyTo(iso.AsSpan(0x8001));
        BinaryPrimitives.WriteInt32LittleEndian(iso.AsSpan(0x8000 + 80), 24);
        BinaryPrimitives.WriteInt16LittleEndian(iso.AsSpan(0x8000 + 128), 2048);
        var record = iso.AsSpan(17 * 2048);
        "CD001"u8.CopyTo(record[1..]);
        record[6] = 1;
        "EL TORITO SPECIFICATION"u8.CopyTo(record[7..]);
        BinaryPrimitives.WriteUInt32LittleEndian(record[0x47..], 20);
        var catalog = iso.AsSpan(20 * 2048);
        catalog[0] = 1;
        catalog[30] = 0x55;
        catalog[31] = 0xAA;
        catalog[32] = 0x88;
        catalog[64] = 0x91;
        catalog[65] = 0xEF;
        catalog[66] = 1;
        catalog[96] = 0x88;
        BinaryPrimitives.WriteUInt16LittleEndian(catalog[(96 + 6)..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(catalog[(96 + 8)..], 22);
        "BOOTX64 EFI"u8.CopyTo(iso.AsSpan(22 * 2048 + 32));
        return iso;
    }
}
