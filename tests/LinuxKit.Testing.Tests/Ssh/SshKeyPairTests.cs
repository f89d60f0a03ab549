using LinuxKit.Testing.Ssh;
using Renci.SshNet;

namespace LinuxKit.Testing.Tests.Ssh;

public sealed class SshKeyPairTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lkt-keys-");

    public void Dispose() => _dir.Delete(recursive: true);

    [Fact]
    public void Generated_key_is_private_to_the_user_and_loads_in_ssh_net()
    {
        var path = Path.Combine(_dir.FullName, "id_ecdsa");
        var line = SshKeyPair.Generate(path, "vm-1");
        Assert.StartsWith("ecdsa-sha2-nistp256 AAAA", line, StringComparison.Ordinal);
        Assert.EndsWith(" vm-1", line, StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        using var key = new PrivateKeyFile(path);
        Assert.NotNull(key.Key);
    }

    [Fact]
    public void Public_key_derived_from_the_private_key_matches_the_generated_line()
    {
        var path = Path.Combine(_dir.FullName, "id_ecdsa");
        var line = SshKeyPair.Generate(path, "c");
        Assert.Equal(string.Join(' ', line.Split(' ')[..2]), SshKeyPair.PublicKeyOf(path));
    }

    [Fact]
    public void Pub_file_beside_the_key_is_preferred()
    {
        var path = Path.Combine(_dir.FullName, "id");
        SshKeyPair.Generate(path, "c");
        File.WriteAllText(path + ".pub", "ssh-ed25519 AAAAfromfile me@host\n");
        Assert.Equal("ssh-ed25519 AAAAfromfile me@host", SshKeyPair.PublicKeyOf(path));
    }

    [Fact]
    public void Missing_key_names_the_option()
    {
        var e = Assert.Throws<LinuxKitException>(() => SshKeyPair.PublicKeyOf(Path.Combine(_dir.FullName, "none")));
        Assert.Contains("RunOptions.SshKey", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Garbage_key_is_refused_with_its_path()
    {
        var path = Path.Combine(_dir.FullName, "bad");
        File.WriteAllText(path, "not a key");
        var e = Assert.Throws<LinuxKitException>(() => SshKeyPair.PublicKeyOf(path));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}
