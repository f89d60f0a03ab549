using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tests.State;

public class VmFilesTests
{
    [Fact]
    public void Every_file_of_a_vm_lies_in_its_folder()
    {
        var files = new VmFiles("0123abcd", "/state/vms/0123abcd");

        string[] paths =
        [
            files.Record, files.ConsoleLog, files.HypervisorLog, files.PidFile, files.SshKey, files.MetadataIso,
            files.Overlay, files.RawDisk, files.VpnKitEthernetSocket, files.VpnKitPortSocket, files.VsockConnectSocket, files.ControlSocket,
        ];

        Assert.All(paths, p => Assert.Equal("/state/vms/0123abcd", Path.GetDirectoryName(p)));
        Assert.Equal(paths.Length, paths.Distinct().Count());
    }

    [Fact]
    public void A_control_socket_path_too_long_for_a_unix_socket_moves_to_the_temp_folder_named_for_the_vm()
    {
        var deep = "/" + string.Join('/', Enumerable.Repeat("a-rather-long-folder-name", 5)) + "/vms/0123abcd";

        var socket = new VmFiles("0123abcd", deep).ControlSocket;

        Assert.Equal(Path.Combine(Path.GetTempPath(), "linuxkit-0123abcd.sock"), socket);
        Assert.True(socket.Length <= 100);
    }
}
