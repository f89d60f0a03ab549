using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// What a VM must share with a template to be restored from it: the image's files (path, length,
/// time of change), the kernel command line, memory, CPUs, the SSH user and key that log in, the
/// network's restriction, and the hypervisor's
/// identity (binary, accelerator and the command line it builds, see
/// <see cref="Hypervisors.IMemorySnapshots.IdentityAsync"/>). Pure: the same inputs give the
/// same key.
/// </summary>
internal static class TemplateKey
{
    /// <summary>The image's files as fingerprints; a template is stale when one no longer matches.</summary>
    public static IReadOnlyList<string> Inputs(LinuxKitImage image) =>
        new[] { image.Path, image.Initrd }.OfType<string>().Select(Fingerprint).ToList();

    /// <summary>One file as "path length ticks"; a missing file has length -1.</summary>
    public static string Fingerprint(string path)
    {
        var file = new FileInfo(path);
        return file.Exists
            ? string.Create(CultureInfo.InvariantCulture, $"{file.FullName} {file.Length} {file.LastWriteTimeUtc.Ticks}")
            : string.Create(CultureInfo.InvariantCulture, $"{file.FullName} -1 0");
    }

    /// <summary>Whether a fingerprint from <see cref="Fingerprint"/> still describes its file.</summary>
    public static bool IsCurrent(string fingerprint)
    {
        // "path length ticks": the path may hold spaces, the numbers do not.
        var end = fingerprint.LastIndexOf(' ', fingerprint.LastIndexOf(' ') - 1);
        return end > 0 && Fingerprint(fingerprint[..end]) == fingerprint;
    }

    /// <summary>A 16-hex-character key: the template folder's name.</summary>
    /// <param name="inputs">The image's files, from <see cref="Inputs"/>, and the hypervisor binary's.</param>
    /// <param name="image">The image.</param>
    /// <param name="options">The VM's options: what the template must share with it.</param>
    /// <param name="login">How the template logs in: the caller's public key line, or "own" for a key of the template's.</param>
    /// <param name="hypervisorIdentity">The hypervisor's identity for the canonical command line.</param>
    public static string Compute(IReadOnlyList<string> inputs, LinuxKitImage image, RunOptions options, string login, string hypervisorIdentity)
    {
        var text = new StringBuilder()
            .AppendJoin('\n', inputs).Append('\n')
            .Append(CultureInfo.InvariantCulture, $"format={image.Format}\ncmdline={image.CommandLine}\nmemory={options.Memory}\ncpus={options.Cpus}\nuser={options.SshUser}\n")
            .Append(CultureInfo.InvariantCulture, $"login={login}\nrestricted={options.RestrictNetwork}\n")
            .Append(hypervisorIdentity);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16].ToLowerInvariant();
    }

    /// <summary>True for what <see cref="Compute"/> makes: the only names a template folder may have.</summary>
    public static bool IsKey(string text) => text.Length == 16 && text.All(char.IsAsciiHexDigitLower);
}
