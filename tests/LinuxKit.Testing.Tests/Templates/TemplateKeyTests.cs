using LinuxKit.Testing.Images;
using LinuxKit.Testing.Templates;

namespace LinuxKit.Testing.Tests.Templates;

public sealed class TemplateKeyTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-key-");

    public void Dispose() => _dir.Delete(recursive: true);

    private LinuxKitImage Image(string content = "kernel")
    {
        var kernel = Path.Combine(_dir.FullName, "os-kernel");
        var initrd = Path.Combine(_dir.FullName, "os-initrd.img");
        File.WriteAllText(kernel, content);
        File.WriteAllText(initrd, "initrd");
        return new LinuxKitImage { Format = ImageFormat.KernelInitrd, Path = kernel, Initrd = initrd, CommandLine = "console=ttyS0" };
    }

    private static string Key(LinuxKitImage image, RunOptions options, string hypervisor = "qemu -machine q35", string login = "own") =>
        TemplateKey.Compute(TemplateKey.Inputs(image), image, options, login, hypervisor);

    [Fact]
    public void The_same_image_and_options_give_the_same_key()
    {
        var image = Image();
        var key = Key(image, new RunOptions());
        Assert.Equal(key, Key(image, new RunOptions()));
        Assert.True(TemplateKey.IsKey(key));
    }

    [Fact]
    public void Memory_cpus_user_command_line_and_hypervisor_each_change_the_key()
    {
        var image = Image();
        var key = Key(image, new RunOptions());
        Assert.NotEqual(key, Key(image, new RunOptions { Memory = 512 }));
        Assert.NotEqual(key, Key(image, new RunOptions { Cpus = 2 }));
        Assert.NotEqual(key, Key(image, new RunOptions { SshUser = "me" }));
        Assert.NotEqual(key, Key(image with { CommandLine = "console=ttyS0 quiet" }, new RunOptions()));
        Assert.NotEqual(key, Key(image, new RunOptions(), "qemu -machine q35 -device vmgenid"));
    }

    [Fact]
    public void The_key_that_logs_in_and_the_networks_restriction_each_change_the_key()
    {
        // A template made with the SDK's own key cannot log in to an image that accepts only the
        // caller's; one booted with an open network must not serve a VM that asked for none.
        var image = Image();
        var key = Key(image, new RunOptions());
        Assert.NotEqual(key, Key(image, new RunOptions(), login: "ssh-ed25519 AAAA... user@host"));
        Assert.NotEqual(Key(image, new RunOptions(), login: "ssh-ed25519 AAAA... a"), Key(image, new RunOptions(), login: "ssh-ed25519 AAAB... b"));
        Assert.NotEqual(key, Key(image, new RunOptions { RestrictNetwork = true }));
    }

    [Fact]
    public void Options_that_do_not_reach_the_saved_state_keep_the_key()
    {
        var image = Image();
        var key = Key(image, new RunOptions());
        Assert.Equal(key, Key(image, new RunOptions { Name = "db", Ports = [new PortMapping(0, 80)], SshPort = 2222, BootTimeout = TimeSpan.FromSeconds(5), Detach = true }));
    }

    [Fact]
    public void A_rewritten_image_file_changes_the_key_and_makes_the_old_fingerprint_stale()
    {
        var image = Image("kernel v1");
        var inputs = TemplateKey.Inputs(image);
        var key = Key(image, new RunOptions());
        Assert.All(inputs, i => Assert.True(TemplateKey.IsCurrent(i)));

        File.WriteAllText(image.Path, "kernel v2, longer");
        Assert.NotEqual(key, Key(image, new RunOptions()));
        Assert.False(TemplateKey.IsCurrent(inputs[0]));
        Assert.True(TemplateKey.IsCurrent(inputs[1]));
    }

    [Fact]
    public void A_same_size_copy_that_keeps_the_modification_time_makes_a_new_key()
    {
        // cp -p, rsync -a, a reproducible build: same length, same mtime, other content.
        var image = Image("kernel v1");
        var modified = File.GetLastWriteTimeUtc(image.Path);
        var inputs = TemplateKey.Inputs(image);
        var key = Key(image, new RunOptions());

        var rebuilt = Path.Combine(_dir.FullName, "rebuilt");
        File.WriteAllText(rebuilt, "kernel v2");
        File.SetLastWriteTimeUtc(rebuilt, modified);
        File.Move(rebuilt, image.Path, overwrite: true);

        Assert.Equal(modified, File.GetLastWriteTimeUtc(image.Path));
        Assert.NotEqual(key, Key(image, new RunOptions()));
        Assert.False(TemplateKey.IsCurrent(inputs[0]));
    }

    [Fact]
    public void The_change_time_is_the_one_stat_reports()
    {
        var file = Path.Combine(_dir.FullName, "f");
        File.WriteAllText(file, "x");
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%Z", file]) { RedirectStandardOutput = true })!;
        var seconds = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        Assert.StartsWith(seconds + ".", TemplateKey.ChangeTime(file), StringComparison.Ordinal);
    }

    [Fact]
    public void A_fingerprint_of_a_path_with_spaces_is_checked_whole()
    {
        var file = Path.Combine(_dir.FullName, "my images", "os 1.iso");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, "iso");
        var fingerprint = TemplateKey.Fingerprint(file);
        Assert.True(TemplateKey.IsCurrent(fingerprint));
        File.Delete(file);
        Assert.False(TemplateKey.IsCurrent(fingerprint));
    }
}
