using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// What a VM must share with a template to be restored from it: the image's files (path, length,
/// times of modification and status change), the kernel command line (also of an image booted directly), memory, CPUs, the SSH user and key that log in, the
/// network's restriction, and the hypervisor's
/// identity (binary, accelerator and the command line it builds, see
/// <see cref="Hypervisors.IMemorySnapshots.IdentityAsync"/>). Pure: the same inputs give the
/// same key.
/// </summary>
internal static partial class TemplateKey
{
    /// <summary>The image's files as fingerprints; a template is stale when one no longer matches.</summary>
    public static IReadOnlyList<string> Inputs(LinuxKitImage image) =>
        new[] { image.Path, image.Initrd }.OfType<string>().Select(Fingerprint).ToList();

    /// <summary>
    /// One file as "path length modified changed": its length, modification time and status
    /// change time (ctime, which no copy or tool can set back: a same-size rebuild copied with
    /// its modification time kept, by `cp -p`, `rsync -a` or a reproducible build, still gets a
    /// new one). A missing file has length -1.
    /// </summary>
    public static string Fingerprint(string path)
    {
        var file = new FileInfo(path);
        return file.Exists
            ? string.Create(CultureInfo.InvariantCulture, $"{file.FullName} {file.Length} {file.LastWriteTimeUtc.Ticks} {ChangeTime(file.FullName)}")
            : string.Create(CultureInfo.InvariantCulture, $"{file.FullName} -1 0 0");
    }

    /// <summary>Whether a fingerprint from <see cref="Fingerprint"/> still describes its file.</summary>
    public static bool IsCurrent(string fingerprint)
    {
        // "path length modified changed": the path may hold spaces, the numbers do not.
        var end = fingerprint.Length;
        for (var i = 0; i < 3 && end > 0; i++) end = fingerprint.LastIndexOf(' ', end - 1);
        return end > 0 && Fingerprint(fingerprint[..end]) == fingerprint;
    }

    /// <summary>The file's status change time as "seconds.nanoseconds"; "?" where it cannot be read.</summary>
    internal static string ChangeTime(string path)
    {
        // The runtime's own stat wrapper has one layout on every Unix (Flags, Mode, Uid, Gid, Size,
        // then seconds and nanoseconds of ATime, MTime, CTime); the buffer is larger than it.
        var status = new byte[512];
        if (Stat(path, status) != 0) return "?";
        return string.Create(CultureInfo.InvariantCulture, $"{BitConverter.ToInt64(status, 56)}.{BitConverter.ToInt64(status, 64):D9}");
    }

    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_Stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, [Out] byte[] status);

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
            .Append(CultureInfo.InvariantCulture, $"login={login}\nrestricted={options.RestrictNetwork}\nunique-clones={options.UniqueClones}\n")
            .Append(image.DirectKernel is { } direct ? $"direct-kernel={direct.CommandLine}\n" : "")
            .Append(hypervisorIdentity);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16].ToLowerInvariant();
    }

    /// <summary>True for what <see cref="Compute"/> makes: the only names a template folder may have.</summary>
    public static bool IsKey(string text) => text.Length == 16 && text.All(char.IsAsciiHexDigitLower);
}
