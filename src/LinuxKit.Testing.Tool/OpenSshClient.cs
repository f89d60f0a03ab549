using System.Globalization;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Tool;

/// <summary>
/// OpenSSH's client pointed at a VM as the SDK reaches it: the VM's key, and only the host key
/// seen at boot trusted, from a known_hosts file of one line in the VM's private folder.
/// </summary>
internal static class OpenSshClient
{
    /// <summary>
    /// Writes the VM's known_hosts (0600; whatever was at that path, a link included, is removed
    /// first, never followed) and returns the client's arguments up to and including the
    /// destination, which follows <c>--</c> so nothing in it is read as an option.
    /// </summary>
    /// <exception cref="LinuxKitException">The VM's record has no host key.</exception>
    public static IReadOnlyList<string> Arguments(string stateDirectory, Container vm)
    {
        if (vm.SshHostKey is null)
            throw new LinuxKitException($"VM {vm.Id}'s record has no host key (it was started by an older SDK); use 'linuxkit-testing exec'.");
        var knownHosts = Path.Combine(new StateStore(stateDirectory).VmDirectory(vm.Id), "known_hosts");
        File.Delete(knownHosts);
        using (var file = PrivateFiles.CreateNew(knownHosts))
        using (var writer = new StreamWriter(file))
        {
            writer.Write(string.Create(CultureInfo.InvariantCulture, $"[127.0.0.1]:{vm.SshPort} {vm.SshHostKey}\n"));
        }
        return
        [
            "-i", vm.SshKeyFile, "-p", vm.SshPort.ToString(CultureInfo.InvariantCulture),
            "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", $"UserKnownHostsFile={knownHosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "--", $"{vm.SshUser}@127.0.0.1",
        ];
    }

    /// <summary>The arguments as one line a POSIX shell runs as given.</summary>
    public static string CommandLine(IReadOnlyList<string> arguments) =>
        "ssh " + string.Join(' ', arguments.Select(Ssh.ShellQuoting.Quote));
}
