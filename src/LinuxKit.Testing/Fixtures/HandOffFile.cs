using System.Text.Json;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Fixtures;

/// <summary>
/// The hand-off from a build step to the test fixtures where an environment variable cannot
/// carry it: under Microsoft Testing Platform `dotnet test` runs the tests after the build has
/// ended, and MSBuild puts its process's environment back as it was when a build ends. The
/// build step writes this file beside the test assembly; the fixtures read it there. It names
/// the VM and its state directory; a VM that no longer runs makes it void.
/// </summary>
internal static class HandOffFile
{
    /// <summary>The file's name, in the test assembly's folder.</summary>
    public const string Name = "linuxkit-testing.handoff.json";

    internal sealed record Contents(string VmId, string StateDirectory);

    public static void Write(string path, string vmId, string stateDirectory)
    {
        var temp = path + ".tmp";
        using (var file = PrivateFiles.Create(temp)) JsonSerializer.Serialize(file, new Contents(vmId, stateDirectory));
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The hand-off beside the running test assembly; null when there is none or it cannot be read.</summary>
    public static Contents? Read()
    {
        var path = Path.Combine(AppContext.BaseDirectory, Name);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<Contents>(File.ReadAllText(path)) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
