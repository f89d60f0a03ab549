using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;

namespace LinuxKit.Testing.Tests.Hypervisors.Qemu;

public sealed class AcceleratorProbeTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("lkt-accel-");
    private int _probes;

    public void Dispose() => _folder.Delete(recursive: true);

    private Task<(Accelerator, string?)> NoKvm()
    {
        _probes++;
        return Task.FromResult<(Accelerator, string?)>((Accelerator.Tcg, "/dev/kvm opens but KVM does not run a guest here"));
    }

    [Fact]
    public async Task A_second_process_on_the_same_host_boot_reuses_the_answer_without_probing()
    {
        var first = await AcceleratorProbe.DiagnoseOnceAsync([_folder.FullName], "qemu|boot:1", NoKvm);
        var second = await AcceleratorProbe.DiagnoseOnceAsync([_folder.FullName], "qemu|boot:1", NoKvm);

        Assert.Equal(1, _probes);
        Assert.False(first.Cached);
        Assert.True(second.Cached);
        Assert.Equal((Accelerator.Tcg, first.WhyNotKvm), (second.Accelerator, second.WhyNotKvm));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_folder.FullName, AcceleratorProbe.CacheFileName)));
    }

    [Fact]
    public async Task A_new_state_directory_takes_the_answer_the_users_cache_holds_and_keeps_a_copy()
    {
        var user = _folder.CreateSubdirectory("user").FullName;
        var firstState = _folder.CreateSubdirectory("state-1").FullName;
        var secondState = _folder.CreateSubdirectory("state-2").FullName;

        await AcceleratorProbe.DiagnoseOnceAsync([firstState, user], "qemu|boot:1", NoKvm);
        var second = await AcceleratorProbe.DiagnoseOnceAsync([secondState, user], "qemu|boot:1", NoKvm);

        Assert.Equal(1, _probes);
        Assert.True(second.Cached);
        Assert.True(File.Exists(Path.Combine(secondState, AcceleratorProbe.CacheFileName)), "the state directory holds no copy of the answer its VMs run under");
    }

    [Fact]
    public async Task A_new_host_boot_or_another_qemu_probes_again()
    {
        await AcceleratorProbe.DiagnoseOnceAsync([_folder.FullName], "qemu|boot:1", NoKvm);
        var rebooted = await AcceleratorProbe.DiagnoseOnceAsync([_folder.FullName], "qemu|boot:2", NoKvm);

        Assert.Equal(2, _probes);
        Assert.False(rebooted.Cached);
    }

    [Fact]
    public async Task A_damaged_answer_is_found_again()
    {
        await File.WriteAllTextAsync(Path.Combine(_folder.FullName, AcceleratorProbe.CacheFileName), "{ not json");
        var answer = await AcceleratorProbe.DiagnoseOnceAsync([_folder.FullName], "qemu|boot:1", NoKvm);

        Assert.Equal(1, _probes);
        Assert.False(answer.Cached);
    }

    [Fact]
    public void The_host_key_names_the_qemu_binary_and_this_boot()
    {
        var key = AcceleratorProbe.HostKey("/bin/sh");
        Assert.StartsWith(new FileInfo("/bin/sh").FullName + "|", key, StringComparison.Ordinal);
        Assert.EndsWith("boot:" + File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(), key, StringComparison.Ordinal);
    }

    [Fact]
    public void The_probe_guest_is_a_multiboot_image_loaded_at_one_mebibyte()
    {
        var image = AcceleratorProbe.MultibootPayload("start", "end");
        uint Word(int i) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(i * 4));

        Assert.Equal(0x1BADB002u, Word(0));
        Assert.Equal(0u, unchecked(Word(0) + Word(1) + Word(2))); // magic + flags + checksum
        Assert.Equal(0x100000u, Word(4));                          // load address
        Assert.Equal(Word(4) + (uint)image.Length, Word(5));       // load end: the whole file
        Assert.Equal(Word(4) + 32, Word(7));                       // entry: right after the header
    }
}
