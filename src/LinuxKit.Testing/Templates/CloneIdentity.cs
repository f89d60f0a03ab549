using System.Buffers.Binary;
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
    /// The command for a clone of <paramref name="architecture"/>. <paramref name="now"/> is the
    /// host's clock when it is sent; <paramref name="authorizedKey"/> an authorized_keys line to
    /// add for the SSH user, or null; <paramref name="savedSession"/> the processes of the
    /// template's own SSH session, saved with it, which the clone ends (their client is gone).
    /// </summary>
    public static string Command(DateTimeOffset now, ReadOnlySpan<byte> entropy, string? authorizedKey, GuestArchitecture architecture = GuestArchitecture.X64, IReadOnlyList<int>? savedSession = null)
    {
        var seconds = (long)Math.Round(now.ToUnixTimeMilliseconds() / 1000.0, MidpointRounding.AwayFromZero);
        var script = new StringBuilder();
        // Their client is gone: left, they would wait for it as long as TCP keeps the connection.
        if (savedSession is { Count: > 0 })
            script.Append("kill -9 ").AppendJoin(' ', savedSession.Select(p => p.ToString(CultureInfo.InvariantCulture))).Append(" 2>/dev/null; ");
        script
            .Append("umask 077; r=0; ")
            // busybox and GNU date both take @SECONDS.
            .Append(CultureInfo.InvariantCulture, $"date -u -s @{seconds} >/dev/null 2>&1 || r={PartlyRenewed}; ")
            // Writing mixes the bytes into the input pool but the kernel draws from it only at
            // its next reseed (up to a minute away): the ioctl reseeds now.
            .Append(CultureInfo.InvariantCulture, $"echo {Convert.ToHexString(entropy)} > /dev/urandom || r={PartlyRenewed}; ")
            .Append("f=$(mktemp) && printf '").Append(Octal(ReseedProgram(architecture))).Append("' > \"$f\" && chmod 700 \"$f\" && \"$f\" < /dev/urandom")
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
    /// A tiny static Linux program for the guest's architecture: <c>ioctl(0, RNDRESEEDCRNG)</c>,
    /// exit with the error number (0 when it worked). No shell tool issues this ioctl, and guests
    /// carry no compiler. Root only (CAP_SYS_ADMIN).
    /// </summary>
    internal static byte[] ReseedProgram(GuestArchitecture architecture) => architecture == GuestArchitecture.Arm64
        ? Executable(MachineArm64,
        [
            0x00, 0x00, 0x80, 0xd2, // mov x0, #0
            0xe1, 0x40, 0x8a, 0xd2, // mov x1, #0x5207 (RNDRESEEDCRNG)
            0x02, 0x00, 0x80, 0xd2, // mov x2, #0
            0xa8, 0x03, 0x80, 0xd2, // mov x8, #29 (ioctl)
            0x01, 0x00, 0x00, 0xd4, // svc #0
            0xe0, 0x03, 0x00, 0xcb, // neg x0, x0
            0xa8, 0x0b, 0x80, 0xd2, // mov x8, #93 (exit)
            0x01, 0x00, 0x00, 0xd4, // svc #0
        ])
        : Executable(MachineX64,
        [
            0x31, 0xff,                   // xor edi, edi
            0xbe, 0x07, 0x52, 0x00, 0x00, // mov esi, 0x5207 (RNDRESEEDCRNG)
            0x31, 0xd2,                   // xor edx, edx
            0xb8, 0x10, 0x00, 0x00, 0x00, // mov eax, 16 (ioctl)
            0x0f, 0x05,                   // syscall
            0x89, 0xc7,                   // mov edi, eax
            0xf7, 0xdf,                   // neg edi
            0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
            0x0f, 0x05,                   // syscall
        ]);

    private const ushort MachineX64 = 0x3E;
    private const ushort MachineArm64 = 0xB7;
    private const ulong LoadAddress = 0x400000;
    private const int HeadersLength = 64 + 56;

    // A static ELF64 little-endian executable: the ELF header, one program header loading the
    // whole file at 0x400000 readable and executable, then the code, entered right after the
    // headers.
    private static byte[] Executable(ushort machine, ReadOnlySpan<byte> code)
    {
        var file = new byte[HeadersLength + code.Length];
        var elf = file.AsSpan();
        ((ReadOnlySpan<byte>)[0x7F, (byte)'E', (byte)'L', (byte)'F']).CopyTo(elf);
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[6] = 1; // version
        BinaryPrimitives.WriteUInt16LittleEndian(elf[16..], 2); // executable
        BinaryPrimitives.WriteUInt16LittleEndian(elf[18..], machine);
        BinaryPrimitives.WriteUInt32LittleEndian(elf[20..], 1);
        BinaryPrimitives.WriteUInt64LittleEndian(elf[24..], LoadAddress + HeadersLength); // entry
        BinaryPrimitives.WriteUInt64LittleEndian(elf[32..], 64); // program headers' offset
        BinaryPrimitives.WriteUInt16LittleEndian(elf[52..], 64); // ELF header size
        BinaryPrimitives.WriteUInt16LittleEndian(elf[54..], 56); // program header size
        BinaryPrimitives.WriteUInt16LittleEndian(elf[56..], 1);  // one program header
        var segment = elf[64..];
        BinaryPrimitives.WriteUInt32LittleEndian(segment, 1);      // loadable
        BinaryPrimitives.WriteUInt32LittleEndian(segment[4..], 5); // readable, executable
        BinaryPrimitives.WriteUInt64LittleEndian(segment[16..], LoadAddress); // virtual address
        BinaryPrimitives.WriteUInt64LittleEndian(segment[24..], LoadAddress); // physical address
        BinaryPrimitives.WriteUInt64LittleEndian(segment[32..], (ulong)file.Length); // size in the file
        BinaryPrimitives.WriteUInt64LittleEndian(segment[40..], (ulong)file.Length); // size in memory
        BinaryPrimitives.WriteUInt64LittleEndian(segment[48..], 0x1000); // alignment
        code.CopyTo(elf[HeadersLength..]);
        return file;
    }
}
