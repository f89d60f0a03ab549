using System.Globalization;
using System.Text.Json;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// The hand-off of a running VM from a build step (<c>StartLinuxKit</c>) to the test fixtures,
/// in one place for both ends. It travels two ways: environment variables, which the tests
/// inherit where the build runs them (VSTest), and a file beside the test assembly, where the
/// tests run after the build has ended (Microsoft Testing Platform: MSBuild puts its process's
/// environment back as it was when a build ends). The variables win over the file; a file that
/// names a VM that no longer runs is left over from an earlier run and void.
/// </summary>
internal static class HandOff
{
    /// <summary>The file's name, in the test assembly's folder.</summary>
    public const string FileName = "linuxkit-testing.handoff.json";

    private sealed record FileContents(string VmId, string StateDirectory);

    /// <summary>Where a handed-off VM was found: its id or name, and the state directory when the file named one.</summary>
    internal sealed record Found(string Vm, string? StateDirectory, bool FromFile)
    {
        /// <summary>Where it came from, as diagnostics and errors name it.</summary>
        public string Source => FromFile ? FileName : LinuxKitEnvironment.VmId;
    }

    /// <summary>Hands <paramref name="vm"/> on: to <paramref name="file"/> when given, to this process's environment when <paramref name="environment"/>.</summary>
    public static void Export(Container vm, string stateDirectory, string? file, bool environment)
    {
        if (!string.IsNullOrEmpty(file))
        {
            var path = Path.GetFullPath(file);
            var temp = path + ".tmp";
            using (var stream = PrivateFiles.Create(temp)) JsonSerializer.Serialize(stream, new FileContents(vm.Id, stateDirectory));
            File.Move(temp, path, overwrite: true);
        }
        if (!environment) return;
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmId, vm.Id);
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.StateDirectory, stateDirectory);
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshPort, vm.SshPort.ToString(CultureInfo.InvariantCulture));
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshKey, vm.SshKeyFile);
        Environment.SetEnvironmentVariable(LinuxKitEnvironment.VmSshUser, vm.SshUser);
    }

    /// <summary>
    /// Takes back a hand-off of VM <paramref name="vmId"/> once it is stopped: the environment
    /// variables when they name it (a reused MSBuild node must not hand a stopped VM to the next
    /// build's tests), and <paramref name="file"/> when given.
    /// </summary>
    public static void Clear(string vmId, string? file = null)
    {
        if (LinuxKitEnvironment.Read(LinuxKitEnvironment.VmId) == vmId)
        {
            foreach (var name in LinuxKitEnvironment.HandOff) Environment.SetEnvironmentVariable(name, null);
        }
        if (string.IsNullOrEmpty(file)) return;
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Void anyway: it names a VM that no longer runs.
        }
    }

    /// <summary>The VM a build step handed to this test process, if any: the environment first, else the file beside the test assembly.</summary>
    public static Found? Find()
    {
        if (LinuxKitEnvironment.Read(LinuxKitEnvironment.VmId) is { } named) return new Found(named, null, FromFile: false);
        var path = Path.Combine(AppContext.BaseDirectory, FileName);
        try
        {
            return File.Exists(path) && JsonSerializer.Deserialize<FileContents>(File.ReadAllText(path)) is { } contents
                ? new Found(contents.VmId, contents.StateDirectory, FromFile: true)
                : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The running VM <paramref name="found"/> names, in <paramref name="manager"/>'s state
    /// directory. A file naming a VM that does not run gives null (left over from an earlier
    /// run: the fixture boots its own); a variable naming one is an error, since the build meant it.
    /// </summary>
    /// <exception cref="LinuxKitException">The environment names a VM that is unknown or not running.</exception>
    public static async Task<Container?> ResolveAsync(IManager manager, Found found, CancellationToken cancellationToken)
    {
        var vms = await manager.ListAsync(cancellationToken).ConfigureAwait(false);
        var vm = found.FromFile ? vms.FirstOrDefault(c => c.Id == found.Vm) : vms.FirstOrDefault(c => c.Id == found.Vm || c.Name == found.Vm);
        if (vm?.Status == ContainerStatus.Running) return vm;
        if (found.FromFile) return null;
        throw vm is null
            ? new LinuxKitException($"{LinuxKitEnvironment.VmId} names VM '{found.Vm}', which is not in state directory '{manager.StateDirectory}' (set {LinuxKitEnvironment.StateDirectory} to the folder the build step used).")
            : new LinuxKitException($"{LinuxKitEnvironment.VmId} names VM '{found.Vm}', which is {vm.Status}.");
    }
}
