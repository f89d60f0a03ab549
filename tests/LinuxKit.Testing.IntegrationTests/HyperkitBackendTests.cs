using System.Diagnostics;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Hyperkit;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The Hyperkit backend, driven for real on Linux: hyperkit, vpnkit and vpnkit-expose-port are
/// stand-ins (tests/LinuxKit.Testing.HyperkitStandIn) that record their arguments and boot the
/// same image with QEMU, so the pid file, console, published ports and stop by SIGTERM are the
/// backend's own. What only a Mac can show (hyperkit's devices, VPNKit's forwarding) is not.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HyperkitBackendTests : IDisposable
{
    private readonly TempDirectory _bin = new("lkt-standins-");
    private readonly TempDirectory _state = new("lkt-hyperkit-");

    public HyperkitBackendTests()
    {
        var standIn = Path.Combine(AppContext.BaseDirectory, "LinuxKit.Testing.HyperkitStandIn.dll");
        foreach (var tool in new[] { "hyperkit", "vpnkit", "vpnkit-expose-port" })
        {
            var script = Path.Combine(_bin.Path, tool);
            File.WriteAllText(script, $"#!/bin/sh\nexec dotnet '{standIn}' {tool} \"$@\"\n");
            File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public void Dispose()
    {
        _bin.Dispose();
        _state.Dispose();
    }

    private LinuxKitManager Manager(string? firmware = null) => new(new LinuxKitManagerOptions
    {
        StateDirectory = _state.Path,
        Hypervisor = HypervisorKind.Hyperkit,
        Hyperkit = new HyperkitOptions
        {
            Binary = Path.Combine(_bin.Path, "hyperkit"),
            VpnKit = Path.Combine(_bin.Path, "vpnkit"),
            VpnKitExposePort = Path.Combine(_bin.Path, "vpnkit-expose-port"),
            Firmware = firmware,
        },
    });

    [Fact]
    public async Task Kernel_initrd_vm_boots_publishes_ports_runs_commands_and_stops_through_the_hyperkit_backend()
    {
        var manager = Manager();
        var vm = await manager.RunAsync(TestEnvironment.Image("kernel"), ScratchManager.Small with { Ports = [new PortMapping(0, 80)] });
        var dir = Path.GetDirectoryName(vm.ConsoleLog)!;

        Assert.Equal("Linux\n", (await manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);
        var page = await TestEnvironment.GetWhenServedAsync(vm.Ports.Single().Key);
        Assert.Contains("Hello from LinuxKit", page, StringComparison.Ordinal);
        using (var logs = new StreamReader(await manager.LogsAsync(vm.Id, follow: false)))
            Assert.Contains("Welcome to LinuxKit", await logs.ReadToEndAsync(), StringComparison.Ordinal);
        await Assert.ThrowsAsync<NotSupportedException>(() => manager.PauseAsync(vm.Id));

        // What the backend asked of hyperkit and of VPNKit.
        var hyperkit = (await File.ReadAllTextAsync(Path.Combine(dir, "hyperkit.args"))).Split('\n');
        Assert.Equal(Path.Combine(dir, "hypervisor.pid"), hyperkit[Array.IndexOf(hyperkit, "-F") + 1]);
        Assert.Equal(HyperkitCommandBuilder.StableUuid(vm.Id), hyperkit[Array.IndexOf(hyperkit, "-U") + 1]);
        Assert.StartsWith("kexec," + TestEnvironment.Image("kernel") + "-kernel,", hyperkit[Array.IndexOf(hyperkit, "-f") + 1], StringComparison.Ordinal);
        var exposed = await File.ReadAllTextAsync(Path.Combine(dir, "expose-port.args"));
        Assert.Contains($"-host-port\n{vm.SshPort}\n-container-ip\n192.168.65.2\n-container-port\n22\n", exposed, StringComparison.Ordinal);
        Assert.Contains($"-host-port\n{vm.Ports.Single().Key}\n-container-ip\n192.168.65.2\n-container-port\n80\n", exposed, StringComparison.Ordinal);

        await manager.StopAsync(vm.Id);

        var stopped = manager.Inspect(vm.Id);
        Assert.Equal(ContainerStatus.Stopped, stopped.Status);
        Assert.Equal(137, stopped.ExitCode); // a fast stop: SIGKILL, and nothing of the VM is left
        Assert.False(TestEnvironment.IsRunning(vm.Pid));
        await AssertNoStandInLeftAsync(dir);
        await manager.DisposeAsync();
        await TestEnvironment.AssertNoQemuLeftAsync(_state.Path);
    }

    [Fact]
    public async Task Qcow2_image_boots_from_a_raw_copy_through_the_firmware_and_is_not_modified()
    {
        var firmware = Path.Combine(_state.Path, "UEFI.fd");
        await File.WriteAllTextAsync(firmware, "stand-in firmware");
        var image = TestEnvironment.Image("qcow2");
        var before = TestEnvironment.Hashes(image);
        await using var manager = Manager(firmware);

        var vm = await manager.RunAsync(image, ScratchManager.Small);
        var dir = Path.GetDirectoryName(vm.ConsoleLog)!;
        var hyperkit = await File.ReadAllTextAsync(Path.Combine(dir, "hyperkit.args"));
        Assert.Contains($"virtio-blk,{Path.Combine(dir, "disk.img")}\n", hyperkit, StringComparison.Ordinal);
        Assert.Contains($"bootrom,{firmware},,", hyperkit, StringComparison.Ordinal);
        Assert.Equal("raw", await QemuImgFormatAsync(Path.Combine(dir, "disk.img")));
        Assert.Equal(0, (await manager.ExecAsync(vm.Id, ["true"])).ExitCode);

        await manager.StopAsync(vm.Id, StopMode.Graceful);
        Assert.Equal(0, manager.Inspect(vm.Id).ExitCode); // SIGTERM became an ACPI power-off, as with hyperkit
        Assert.False(File.Exists(Path.Combine(dir, "disk.img"))); // the copy goes with the VM
        Assert.Equal(before, TestEnvironment.Hashes(image));
    }

    [Fact]
    public async Task An_iso_without_firmware_is_refused_with_what_to_do()
    {
        await using var manager = Manager();

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(TestEnvironment.Image("iso"), ScratchManager.Small));

        Assert.Contains("HyperkitOptions.Firmware", e.Message, StringComparison.Ordinal);
        Assert.Contains("kernel+initrd", e.Message, StringComparison.Ordinal);
        await TestEnvironment.AssertNoQemuLeftAsync(_state.Path);
    }

    private static async Task<string> QemuImgFormatAsync(string path)
    {
        var (_, output) = await RunAsync("qemu-img", "info", "--output=json", path);
        return System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("format").GetString()!;
    }

    private static async Task<(int, string)> RunAsync(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true })!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, output);
    }

    // The stand-in vpnkit and vpnkit-expose-port end with the VM (the backend's helper shell).
    private static Task AssertNoStandInLeftAsync(string vmDirectory) =>
        TestEnvironment.AssertNoneLeftAsync(
            "Stand-ins",
            () => TestEnvironment.ProcessesWhose(cmdline => cmdline.Contains("HyperkitStandIn", StringComparison.Ordinal) && cmdline.Contains(vmDirectory, StringComparison.Ordinal)),
            TimeSpan.FromSeconds(10));
}
