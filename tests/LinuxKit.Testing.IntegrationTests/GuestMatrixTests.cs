using System.Text;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The lifecycle (boot, exec, files, console, stop) on guests shaped as real LinuxKit images
/// are, each warm and cold, on dropbear and OpenSSH: a default that works for one way of handing
/// over keys or one kind of guest only fails here. The key read from the metadata CD-ROM by root
/// is the shape of the other integration tests; here: the key baked into the image with no
/// metadata read (LinuxKit's sshd example; the caller passes the matching private key), the key
/// read as cloud-init reads it (a NoCloud cidata disk, LinuxKit's metadata ignored), logins as a
/// user other than root, and /tmp mounted noexec.
/// </summary>
[Trait("Category", "Integration")]
public class GuestMatrixTests
{
    public static TheoryData<string, string, bool> ShapesGuestsWarmAndCold()
    {
        var rows = new TheoryData<string, string, bool>();
        foreach (var shape in new[] { "baked", "cidata", "user", "noexec" })
            foreach (var guest in new[] { "dropbear", "openssh" })
                foreach (var warm in new[] { true, false })
                    rows.Add(shape, guest, warm);
        return rows;
    }

    [Theory]
    [MemberData(nameof(ShapesGuestsWarmAndCold))]
    public async Task The_lifecycle_runs_on_every_guest_shape_warm_and_cold(string shape, string guest, bool warm)
    {
        await using var scratch = new ScratchManager();
        var options = shape switch
        {
            "baked" => ScratchManager.Small with { SshKey = TestEnvironment.BakedKey },
            "user" => ScratchManager.Small with { SshUser = "user" },
            _ => ScratchManager.Small,
        } with { WarmStart = warm };
        var (home, uid) = shape == "user" ? ("/home/user", 1000) : ("/root", 0);
        // Warm: the first VM makes the template (logging in as the VM would), the second is
        // restored from it.
        for (var vmNumber = 1; vmNumber <= (warm ? 2 : 1); vmNumber++)
        {
            var vm = await scratch.Manager.RunAsync(TestEnvironment.ShapedImage(guest, shape), options);
            if (warm) Assert.NotNull(vm.WarmStartTemplate);
            else Assert.Null(vm.WarmStartTemplate);
            if (warm && vmNumber == 2)
            {
                // The first VM ran on as the template, saved logged in: the clone ended the
                // processes of that session, whose client it never had.
                var saved = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(scratch.State, "templates", vm.WarmStartTemplate!, "template.json")))
                    .RootElement.GetProperty("SavedSession").EnumerateArray().Select(p => p.GetInt32()).ToList();
                Assert.Equal(shape == "user" && guest == "dropbear" ? 0 : 3, saved.Count);
                // SIGKILL is sent before the clone is handed out; the processes end (zombies until
                // reaped count as ended) as soon as the guest schedules them.
                var alive = await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", StillRunning(saved)]);
                Assert.Equal("", alive.Stdout.Trim());
            }

            var who = await scratch.Manager.ExecAsync(vm.Id, ["sh", "-c", "id -u; grep ' /tmp ' /proc/mounts"]);
            Assert.StartsWith($"{uid}\n", who.Stdout, StringComparison.Ordinal);
            Assert.Equal(shape == "noexec", who.Stdout.Contains("noexec", StringComparison.Ordinal));
            await scratch.Manager.WriteFileAsync(vm.Id, $"{home}/note.txt", new MemoryStream(Encoding.UTF8.GetBytes($"vm {vmNumber}")), (UnixFileMode)0x180, uid, uid);
            Assert.Equal($"vm {vmNumber}", Encoding.UTF8.GetString(await scratch.Manager.ReadFileAsync(vm.Id, $"{home}/note.txt")));
            var console = string.Join('\n', (await scratch.Manager.ReadConsoleAsync(vm.Id)).Select(l => l.Text));
            Assert.Contains("Welcome to LinuxKit", console, StringComparison.Ordinal);
            if (shape == "baked") Assert.Contains("key baked into the image; no metadata read", console, StringComparison.Ordinal);
            if (shape == "cidata") Assert.Contains("cloud-init NoCloud data from /dev/sr0: 1 key(s)", console, StringComparison.Ordinal);
            if (shape == "user") Assert.Contains("SSH logins as user only", console, StringComparison.Ordinal);
            await scratch.Manager.StopAsync(vm.Id);
            Assert.False(TestEnvironment.IsRunning(vm.Pid));
        }
    }

    // Those of the processes that still run (not zombies) after up to 3 s.
    private static string StillRunning(IEnumerable<int> pids) =>
        $$"""
        i=0
        while :; do
          alive=
          for p in {{string.Join(' ', pids)}}; do
            [ -e /proc/$p ] && [ "$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)" != Z ] && alive="$alive $p"
          done
          [ -z "$alive" ] || [ $i -ge 30 ] && break
          sleep 0.1; i=$((i+1))
        done
        echo $alive
        """;

    [Fact]
    public async Task With_unique_clones_a_guest_whose_clones_cannot_be_renewed_boots_cold_and_later_vms_skip_the_attempt()
    {
        await using var scratch = new ScratchManager();
        // As "user" the clone can neither set the clock nor reseed the kernel's random pool.
        var options = ScratchManager.Small with { SshUser = "user", UniqueClones = true };
        var image = TestEnvironment.ShapedImage("dropbear", "user");

        var first = await scratch.Manager.RunAsync(image, options);
        var second = await scratch.Manager.RunAsync(image, options);

        Assert.Null(first.WarmStartTemplate);
        Assert.Null(second.WarmStartTemplate);
        // The failed attempt is remembered for the template's key, with its reason.
        var failure = Assert.Single(Directory.GetFiles(Path.Combine(scratch.State, "templates"), "*.failed"));
        Assert.Contains("UniqueClones", await File.ReadAllTextAsync(failure), StringComparison.Ordinal);
        Assert.Equal("1000\n", (await scratch.Manager.ExecAsync(second.Id, ["id", "-u"])).Stdout);
        await scratch.Manager.StopAsync(first.Id);
        await scratch.Manager.StopAsync(second.Id);
    }
}
