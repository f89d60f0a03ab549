using System.Text;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The lifecycle (boot, exec, files, console, stop) on guests that take their key in other ways
/// than the SDK's own test images, warm and cold: a default that works for one way of handing
/// over keys only must fail here. Today's rows: the key read from the metadata CD-ROM (the
/// other lifecycle tests), and the key baked into the image with the metadata never read
/// (LinuxKit's sshd example), where the caller passes the matching private key.
/// </summary>
[Trait("Category", "Integration")]
public class GuestMatrixTests
{
    public static TheoryData<string, bool> GuestsWarmAndCold => new()
    {
        { "dropbear", true }, { "dropbear", false }, { "openssh", true }, { "openssh", false },
    };

    [Theory]
    [MemberData(nameof(GuestsWarmAndCold))]
    public async Task A_guest_with_its_key_baked_in_runs_the_lifecycle_with_the_callers_key(string guest, bool warm)
    {
        await using var scratch = new ScratchManager();
        var options = ScratchManager.Small with { SshKey = TestEnvironment.BakedKey, WarmStart = warm };
        // Warm: the first VM makes the template (logging in with the caller's key, the only one
        // the guest accepts), the second is restored from it.
        for (var vmNumber = 1; vmNumber <= (warm ? 2 : 1); vmNumber++)
        {
            var vm = await scratch.Manager.RunAsync(TestEnvironment.BakedKeyImage(guest), options);
            if (warm) Assert.NotNull(vm.WarmStartTemplate);
            else Assert.Null(vm.WarmStartTemplate);

            Assert.Equal("Linux\n", (await scratch.Manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);
            await scratch.Manager.WriteFileAsync(vm.Id, "/root/note.txt", new MemoryStream(Encoding.UTF8.GetBytes($"vm {vmNumber}")), (UnixFileMode)0x180);
            Assert.Equal($"vm {vmNumber}", Encoding.UTF8.GetString(await scratch.Manager.ReadFileAsync(vm.Id, "/root/note.txt")));
            var console = string.Join('\n', (await scratch.Manager.ReadConsoleAsync(vm.Id)).Select(l => l.Text));
            Assert.Contains("key baked into the image; no metadata read", console, StringComparison.Ordinal);
            await scratch.Manager.StopAsync(vm.Id);
            Assert.False(TestEnvironment.IsRunning(vm.Pid));
        }
    }
}
