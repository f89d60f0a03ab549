namespace LinuxKit.Testing.IntegrationTests;

/// <summary>What the SDK and QEMU leave in a state directory is the user's alone.</summary>
[Trait("Category", "Integration")]
public class StateModesTests
{
    private const UnixFileMode GroupOrOthers = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    [Fact]
    public async Task Every_file_and_socket_after_a_boot_a_warm_start_and_a_stop_is_the_users_alone()
    {
        await using var scratch = new ScratchManager();
        // A root the user chose keeps its own mode (here readable by others): what is inside must not.
        File.SetUnixFileMode(scratch.State, File.GetUnixFileMode(scratch.State) | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var options = ScratchManager.Small with { WarmStart = true, Ports = [new PortMapping(0, 80)] };

        // A UEFI disk: an overlay, a copy of the firmware's variables (0644 where the firmware is installed).
        var first = await scratch.Manager.RunAsync(TestEnvironment.Image("qcow2-efi"), options);   // makes the template
        var second = await scratch.Manager.RunAsync(TestEnvironment.Image("qcow2-efi"), options);  // a clone
        Assert.NotNull(second.WarmStartTemplate);
        var whileRunning = Exposed(scratch.State);
        await scratch.Manager.StopAsync(first.Id);
        var afterStop = Exposed(scratch.State);
        await scratch.Manager.StopAsync(second.Id);

        Assert.True(whileRunning.Count == 0, string.Join("\n", whileRunning));
        Assert.True(afterStop.Count == 0, string.Join("\n", afterStop));
    }

    // Every entry under the root, but the root, that group or others may use.
    private static List<string> Exposed(string root) =>
        new DirectoryInfo(root).EnumerateFileSystemInfos("*", SearchOption.AllDirectories)
            .Where(e => e.LinkTarget is null && (e.UnixFileMode & GroupOrOthers) != 0)
            .Select(e => $"{Convert.ToString((int)e.UnixFileMode, 8)} {e.FullName}")
            .ToList();
}
