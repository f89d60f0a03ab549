using LinuxKit.Testing.Tests.Images;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing.Tests.Hypervisors.Qemu;

public class QemuHypervisorTests
{
    [Fact]
    public void Missing_qemu_binary_says_which_package_installs_it()
    {
        var e = Assert.Throws<LinuxKitException>(() => new QemuHypervisor("/nonexistent/qemu-system-x86_64", Accelerator.Tcg, NullLogger.Instance));
        Assert.Contains("/nonexistent/qemu-system-x86_64", e.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install qemu-system-x86 qemu-utils", e.Message, StringComparison.Ordinal);
        Assert.Contains("brew install qemu", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Manager_reports_missing_qemu_on_run_and_still_lists_without_it()
    {
        var state = Directory.CreateTempSubdirectory("lkt-noqemu-");
        var images = Directory.CreateTempSubdirectory("lkt-noqemu-img-");
        try
        {
            var image = Path.Combine(images.FullName, "os.iso");
            await File.WriteAllBytesAsync(image, ImageResolutionTests.IsoBytes());
            await using var manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = state.FullName, QemuPath = "/nonexistent/qemu" });
            Assert.Empty(await manager.ListAsync());
            var e = await Assert.ThrowsAsync<LinuxKitException>(() => manager.RunAsync(image, new RunOptions()));
            Assert.Contains("qemu-system-x86", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            state.Delete(recursive: true);
            images.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_control_socket_that_never_greets_is_an_error_after_its_budget_not_a_hang()
    {
        // What QEMU's QMP socket does while another client holds it: it accepts, and says nothing.
        var dir = Directory.CreateTempSubdirectory("lkt-qmp-");
        var path = Path.Combine(dir.FullName, "control.sock");
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
        listener.Listen();
        try
        {
            var qemu = new QemuHypervisor("qemu-system-x86_64", Accelerator.Tcg, NullLogger.Instance);

            var e = await Assert.ThrowsAsync<LinuxKitException>(() => qemu.PauseAsync(path, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));

            Assert.Contains("did not answer 'stop' within 5 s", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
