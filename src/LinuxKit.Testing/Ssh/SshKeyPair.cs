using LinuxKit.Testing.State;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Renci.SshNet;

namespace LinuxKit.Testing.Ssh;

/// <summary>
/// SSH keys for VMs: a fresh ECDSA P-256 key per VM (made with the platform's own crypto,
/// readable by SSH.NET, OpenSSH and dropbear), or the public half of a key the user supplies.
/// </summary>
internal static class SshKeyPair
{
    private const string Algorithm = "ecdsa-sha2-nistp256";

    /// <summary>Writes a new private key (mode 0600) and returns its authorized_keys line.</summary>
    public static string Generate(string privateKeyPath, string comment)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var point = key.ExportParameters(includePrivateParameters: false).Q;
        var blob = new MemoryStream();
        WriteString(blob, Encoding.ASCII.GetBytes(Algorithm));
        WriteString(blob, "nistp256"u8);
        WriteString(blob, [0x04, .. point.X!, .. point.Y!]);

        using (var file = new StreamWriter(PrivateFiles.CreateNew(privateKeyPath), Encoding.ASCII))
        {
            file.Write(key.ExportECPrivateKeyPem());
            file.Write('\n');
        }
        return $"{Algorithm} {Convert.ToBase64String(blob.ToArray())} {comment}";
    }

    /// <summary>
    /// The authorized_keys line of a user's private key: its ".pub" file when there is one,
    /// else derived from the private key.
    /// </summary>
    public static string PublicKeyOf(string privateKeyPath)
    {
        if (!File.Exists(privateKeyPath))
            throw new LinuxKitException($"SSH key '{privateKeyPath}' does not exist (RunOptions.SshKey must be a private key file).");
        var pub = privateKeyPath + ".pub";
        if (File.Exists(pub)) return File.ReadAllText(pub).Trim();
        try
        {
            using var keyFile = new PrivateKeyFile(privateKeyPath);
            // The wire-format public key starts with its own type name ("ssh-ed25519", "ssh-rsa", ...).
            var blob = keyFile.HostKeyAlgorithms.First().Data;
            var nameLength = BinaryPrimitives.ReadInt32BigEndian(blob);
            return $"{Encoding.ASCII.GetString(blob, 4, nameLength)} {Convert.ToBase64String(blob)}";
        }
        catch (Exception e) when (e is not LinuxKitException)
        {
            throw new LinuxKitException($"SSH key '{privateKeyPath}' cannot be read as an unencrypted private key: {e.Message}", e);
        }
    }

    private static void WriteString(Stream stream, ReadOnlySpan<byte> value)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, value.Length);
        stream.Write(length);
        stream.Write(value);
    }
}
