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
            files.Overlay, files.Memory, files.UefiVars, files.Kernel, files.Initrd, files.FirmwareLog, files.RawDisk, files.VpnKitEthernetSocket, files.VpnKitPortSocket, files.VsockConnectSocket, files.ControlSocket,
        ];

        Assert.All(paths, p => Assert.Equal("/state/vms/0123abcd", Path.GetDirectoryName(p)));
        Assert.Equal(paths.Length, paths.Distinct().Count());
    }

    [Fact]
    public void A_control_socket_path_too_long_for_a_unix_socket_moves_to_a_private_folder_named_for_the_vms_folder()
    {
        var deep = "/" + string.Join('/', Enumerable.Repeat("a-rather-long-folder-name", 5)) + "/vms/0123abcd";
        var otherState = deep.Replace("/vms/", "/other/vms/", StringComparison.Ordinal);

        var socket = new VmFiles("0123abcd", deep).ControlSocket;

        Assert.Equal(VmFiles.ShortSocketFolder, Path.GetDirectoryName(socket));
        Assert.Equal(Path.Combine(Path.GetTempPath(), $"linuxkit-testing-{PrivateFiles.CurrentUser()}"), VmFiles.ShortSocketFolder);
        Assert.NotEqual(socket, new VmFiles("0123abcd", otherState).ControlSocket); // the same id elsewhere
        Assert.True(socket.Length <= 100);
    }

    [Fact]
    public void A_socket_folder_another_user_could_write_to_is_refused()
    {
        var deep = "/" + string.Join('/', Enumerable.Repeat("a-rather-long-folder-name", 5)) + "/vms/0123abcd";
        var files = new VmFiles("0123abcd", deep);
        files.PrepareControlSocketFolder();
        Assert.Equal(PrivateFiles.FolderMode, File.GetUnixFileMode(VmFiles.ShortSocketFolder));

        File.SetUnixFileMode(VmFiles.ShortSocketFolder, (UnixFileMode)0x1FF); // 0777
        try
        {
            var e = Assert.Throws<LinuxKitException>(files.PrepareControlSocketFolder);
            Assert.Contains("other users can write to it", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.SetUnixFileMode(VmFiles.ShortSocketFolder, PrivateFiles.FolderMode);
        }
    }
}
