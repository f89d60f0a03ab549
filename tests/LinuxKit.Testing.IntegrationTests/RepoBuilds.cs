using System.Collections.Concurrent;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// The one way the integration tests run the dotnet CLI on a project of this tree (a pack, a
/// build, a `dotnet test` of a sample): one at a time per project, within this process and
/// across processes. Test classes run in parallel, and two builds of one project at once write
/// its obj/ and bin/ together; a compiler then reads a half-written reference assembly and the
/// build fails by timing (CS0009).
/// </summary>
/// <remarks>
/// Everything under src/ is one unit: packing one package builds the projects it references.
/// The samples reference the packed packages, not src/, so each sample is a unit of its own.
/// </remarks>
internal static class RepoBuilds
{
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> InProcess = new(StringComparer.Ordinal);

    /// <summary>The unit that every project under src/ belongs to.</summary>
    public const string Sources = "src";

    /// <summary>Runs `dotnet ARGS` while holding the lock of <paramref name="unit"/> (src, or a sample's folder name).</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(
        string unit, IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment, TimeSpan timeout, string? workingDirectory = null)
    {
        var gate = InProcess.GetOrAdd(unit, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync();
        try
        {
            using var fileLock = await AcquireFileLockAsync(unit);
            // No MSBuild node may outlive the command and go on writing after the lock is released.
            var withoutNodeReuse = new Dictionary<string, string?>(environment) { ["MSBUILDDISABLENODEREUSE"] = "1" };
            return await TestEnvironment.RunDotnetAsync(args, withoutNodeReuse, timeout, workingDirectory);
        }
        finally
        {
            gate.Release();
        }
    }

    // Another test process on the same tree (two `dotnet test` runs, an IDE beside a shell)
    // takes the same lock file; the OS releases it when a holder dies.
    private static async Task<FileStream> AcquireFileLockAsync(string unit)
    {
        var folder = Path.Combine(FixtureSampleTests.Repo, ".cache", "build-locks");
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, unit + ".lock");
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(15);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }
}
