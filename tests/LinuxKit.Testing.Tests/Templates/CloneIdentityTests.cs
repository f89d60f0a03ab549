using System.Diagnostics;
using LinuxKit.Testing.Templates;

namespace LinuxKit.Testing.Tests.Templates;

public sealed class CloneIdentityTests
{
    private static readonly byte[] Entropy = [.. Enumerable.Range(0, 32).Select(i => (byte)i)];

    [Fact]
    public void The_clock_is_set_to_the_nearest_host_second()
    {
        var command = CloneIdentity.Command(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_600), Entropy, authorizedKey: null);
        Assert.Contains("date -u -s @1700000001 ", command, StringComparison.Ordinal);
    }

    [Fact]
    public void Host_entropy_is_written_to_the_guest_pool_and_the_pool_reseeded()
    {
        var command = CloneIdentity.Command(DateTimeOffset.UnixEpoch, Entropy, authorizedKey: null);
        Assert.Contains($"echo {Convert.ToHexString(Entropy)} > /dev/urandom", command, StringComparison.Ordinal);
        Assert.Contains("\"$f\" < /dev/urandom", command, StringComparison.Ordinal);
        Assert.DoesNotContain("authorized_keys", command, StringComparison.Ordinal);
    }

    [Fact]
    public void The_callers_key_is_appended_quoted_to_the_users_authorized_keys()
    {
        var command = CloneIdentity.Command(DateTimeOffset.UnixEpoch, Entropy, "ssh-ed25519 AAAA me@host; rm -rf /");
        Assert.Contains("echo 'ssh-ed25519 AAAA me@host; rm -rf /' >> ~/.ssh/authorized_keys", command, StringComparison.Ordinal);
    }

    [Fact]
    public void A_clone_first_ends_the_processes_of_the_session_its_template_was_saved_with_whatever_kill_says()
    {
        var command = CloneIdentity.Command(DateTimeOffset.UnixEpoch, Entropy, authorizedKey: null, savedSession: [812, 815, 816]);
        Assert.StartsWith("kill -9 812 815 816 2>/dev/null; umask 077; r=0; ", command, StringComparison.Ordinal);
        Assert.EndsWith("exit $r", command, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_saved_session_nothing_is_killed()
    {
        Assert.DoesNotContain("kill", CloneIdentity.Command(DateTimeOffset.UnixEpoch, Entropy, authorizedKey: null), StringComparison.Ordinal);
        Assert.DoesNotContain("kill", CloneIdentity.Command(DateTimeOffset.UnixEpoch, Entropy, authorizedKey: null, savedSession: []), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_reseed_program_is_a_valid_x86_64_executable_that_issues_the_ioctl_on_its_stdin()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64)
            return; // the program is for x86-64 Linux guests; only such a host can run it
        var program = Path.Combine(Path.GetTempPath(), $"lkt-reseed-{Guid.NewGuid():N}");
        await File.WriteAllBytesAsync(program, CloneIdentity.ReseedProgram(GuestArchitecture.X64).ToArray());
        File.SetUnixFileMode(program, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            // On /dev/null the ioctl is not one the device knows: ENOTTY (25), the proof the call was made.
            var (onNull, _) = await RunAsync("/bin/sh", ["-c", $"'{program}' < /dev/null"]);
            Assert.Equal(25, onNull);
            // On the random device: done as root, refused (EPERM) otherwise.
            var (onRandom, _) = await RunAsync("/bin/sh", ["-c", $"'{program}' < /dev/urandom"]);
            Assert.Equal(LinuxKit.Testing.State.PrivateFiles.CurrentUser() == 0 ? 0 : 1, onRandom);
        }
        finally
        {
            File.Delete(program);
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }
}
