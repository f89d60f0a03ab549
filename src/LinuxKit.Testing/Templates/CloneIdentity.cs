using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// What makes a clone its own VM once it runs: every clone of a template wakes with the
/// template's clock, random generator state and keys. One shell command, run as soon as the
/// clone answers over SSH, sets the clock from the host, mixes host entropy into the kernel's
/// pool and forces the kernel to reseed from it, and installs the caller's own key if there is
/// one. Pure: the command is built here, run by the manager.
/// </summary>
internal static class CloneIdentity
{
    /// <summary>The exit code when the clock or the random generator could not be renewed.</summary>
    public const int PartlyRenewed = 3;

    /// <summary>
    /// The command for a clone. <paramref name="now"/> is the host's clock when it is sent;
    /// <paramref name="authorizedKey"/> an authorized_keys line to add for the SSH user, or null.
    /// </summary>
    public static string Command(DateTimeOffset now, ReadOnlySpan<byte> entropy, string? authorizedKey)
    {
        var seconds = (long)Math.Round(now.ToUnixTimeMilliseconds() / 1000.0, MidpointRounding.AwayFromZero);
        var script = new StringBuilder()
            .Append("umask 077; r=0; ")
            // busybox and GNU date both take @SECONDS.
            .Append(CultureInfo.InvariantCulture, $"date -u -s @{seconds} >/dev/null 2>&1 || r={PartlyRenewed}; ")
            // Writing mixes the bytes into the input pool but the kernel draws from it only at
            // its next reseed (up to a minute away): the ioctl reseeds now.
            .Append(CultureInfo.InvariantCulture, $"echo {Convert.ToHexString(entropy)} > /dev/urandom || r={PartlyRenewed}; ")
            .Append("f=$(mktemp) && printf '").Append(Octal(ReseedProgram)).Append("' > \"$f\" && chmod 700 \"$f\" && \"$f\" < /dev/urandom")
            .Append(CultureInfo.InvariantCulture, $" || r={PartlyRenewed}; rm -f \"$f\"; ");
        if (authorizedKey is not null)
        {
            script.Append("mkdir -p ~/.ssh && chmod 700 ~/.ssh && echo ").Append(ShellQuoting.Quote(authorizedKey))
                .Append(" >> ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys || exit 4; ");
        }
        return script.Append("exit $r").ToString();
    }

    /// <summary>Fresh host entropy for one clone.</summary>
    public static byte[] Entropy() => RandomNumberGenerator.GetBytes(32);

    private static string Octal(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length * 4);
        foreach (var b in bytes) text.Append('\\').Append(Convert.ToString(b, 8).PadLeft(3, '0'));
        return text.ToString();
    }

    /// <summary>
    /// A 147-byte static x86-64 Linux program: <c>ioctl(0, RNDRESEEDCRNG)</c>, exit with the
    /// error number (0 when it worked). No shell tool issues this ioctl, and guests carry no
    /// compiler. Clones are always x86-64 (qemu-system-x86_64). Root only (CAP_SYS_ADMIN).
    /// </summary>
    internal static ReadOnlySpan<byte> ReseedProgram =>
    [
        // ELF header: 64-bit, little-endian, executable, x86-64, entry 0x400078, one program header at 64.
        0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x00, 0x3e, 0x00, 0x01, 0x00, 0x00, 0x00, 0x78, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x38, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // Program header: one loadable, readable and executable segment, the whole file at 0x400000.
        0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x93, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x93, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        // xor edi,edi; mov esi,0x5207 (RNDRESEEDCRNG); xor edx,edx; mov eax,16 (ioctl); syscall
        0x31, 0xff, 0xbe, 0x07, 0x52, 0x00, 0x00, 0x31, 0xd2, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x0f, 0x05,
        // mov edi,eax; neg edi; mov eax,60 (exit); syscall
        0x89, 0xc7, 0xf7, 0xdf, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x0f, 0x05,
    ];
}
