using System.Diagnostics;
using System.Security.Cryptography;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>The test images (built by build/test-image/build.sh) and checks on host processes.</summary>
internal static class TestEnvironment
{
    private static readonly Lazy<string> Images = new(FindImages);

    /// <summary>The image of a format, as LinuxKit names its outputs.</summary>
    public static string Image(string format) => format switch
    {
        "kernel" => Path.Combine(Images.Value, "linuxkit-ssh"),
        "iso" => Path.Combine(Images.Value, "linuxkit-ssh.iso"),
        "raw" => Path.Combine(Images.Value, "linuxkit-ssh-bios.img"),
        "qcow2" => Path.Combine(Images.Value, "linuxkit-ssh.qcow2"),
        "vmdk" => Path.Combine(Images.Value, "linuxkit-ssh.vmdk"),
        "iso-efi" => Path.Combine(Images.Value, "linuxkit-ssh-efi.iso"),
        "qcow2-efi" => Path.Combine(Images.Value, "linuxkit-ssh-efi.qcow2"),
        "arm64" => Path.Combine(Images.Value, "linuxkit-ssh-arm64"),
        "9p" => Path.Combine(Images.Value, "linuxkit-ssh-9p"),
        "sshd" => Path.Combine(Images.Value, "linuxkit-sshd"),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    /// <summary>
    /// The SSH servers every SSH test runs against: dropbear (answers without forking) and
    /// OpenSSH as LinuxKit's sshd package runs it (a process forked per connection before the
    /// banner, host keys made at boot, MaxStartups and MaxSessions, no ACPI handler).
    /// </summary>
    public static TheoryData<string> Guests => new() { "dropbear", "openssh" };

    /// <summary>Each of <see cref="Guests"/> with true and with false (warm and cold, a whole group and one process, ...).</summary>
    public static TheoryData<string, bool> GuestsEitherWay => new()
    {
        { "dropbear", true }, { "dropbear", false }, { "openssh", true }, { "openssh", false },
    };

    /// <summary>
    /// The kernel+initrd test image whose SSH server is <paramref name="guest"/>; any other name
    /// is an <see cref="Image"/> format (dropbear too), e.g. "arm64" or "qcow2-efi".
    /// </summary>
    public static string GuestImage(string guest) => guest switch
    {
        "dropbear" => Image("kernel"),
        "openssh" => Image("sshd"),
        _ => Image(guest),
    };

    /// <summary>
    /// The same guest as <see cref="GuestImage"/> in another shape (build/test-image/build.sh):
    /// "baked", root's key baked into the image and no metadata read, as LinuxKit's sshd example
    /// makes it (only <see cref="BakedKey"/> logs in); "user", logins as "user" (uid 1000) only;
    /// "noexec", /tmp mounted noexec; "cidata", the key taken as cloud-init's NoCloud takes it.
    /// </summary>
    public static string ShapedImage(string guest, string shape) => GuestImage(guest) + "-" + shape;

    /// <summary>The private key whose public half the baked-key images carry.</summary>
    public static string BakedKey => Path.Combine(Images.Value, "baked-key");

    private static string FindImages()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("LINUXKIT_TESTING_IMAGES");
        if (!string.IsNullOrEmpty(fromEnvironment)) return fromEnvironment;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, ".cache", "images");
            if (File.Exists(Path.Combine(candidate, "linuxkit-ssh-kernel"))) return candidate;
        }
        throw new InvalidOperationException("The test images are missing: run build/test-image/build.sh (build/test.sh does) or set LINUXKIT_TESTING_IMAGES.");
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    /// <summary>Every file an image consists of (a kernel+initrd image has three).</summary>
    public static IEnumerable<string> ImageFiles(string image) =>
        File.Exists(image) ? [image] : [image + "-kernel", image + "-initrd.img", image + "-cmdline"];

    public static Dictionary<string, string> Hashes(string image) => ImageFiles(image).ToDictionary(f => f, Sha256);

    /// <summary>Processes whose command line (arguments joined by NUL) matches <paramref name="commandLine"/>.</summary>
    public static List<int> ProcessesWhose(Func<string, bool> commandLine)
    {
        var found = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out var pid)) continue;
            string cmdline;
            try { cmdline = File.ReadAllText(Path.Combine(proc, "cmdline")); }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            if (commandLine(cmdline)) found.Add(pid);
        }
        return found;
    }

    /// <summary>QEMU processes whose command line mentions <paramref name="stateDirectory"/>.</summary>
    public static List<int> QemuProcessesUnder(string stateDirectory) => ProcessesWhose(cmdline =>
        (cmdline.StartsWith("qemu-system", StringComparison.Ordinal) || cmdline.Contains("/qemu-system", StringComparison.Ordinal))
        && cmdline.Contains(stateDirectory, StringComparison.Ordinal));

    public static Task AssertNoQemuLeftAsync(string stateDirectory) =>
        // A stopped VM's QEMU is gone at once; a killed owner's watchdog needs a moment.
        AssertNoneLeftAsync("QEMU processes", () => QemuProcessesUnder(stateDirectory), TimeSpan.FromSeconds(15));

    /// <summary>Waits up to 30 s for <paramref name="condition"/>; fails naming <paramref name="what"/> when it never holds.</summary>
    public static async Task AssertEventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"{what} did not come within 30 s");
            await Task.Delay(200);
        }
    }

    /// <summary>Waits up to <paramref name="patience"/> for <paramref name="find"/> to find no process.</summary>
    public static async Task AssertNoneLeftAsync(string what, Func<List<int>> find, TimeSpan patience)
    {
        var deadline = DateTime.UtcNow + patience;
        List<int> left;
        while ((left = find()).Count > 0 && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(left.Count == 0, $"{what} left running: {string.Join(", ", left)}");
    }

    /// <summary>The test image's web page on a host port, once its web server answers (within a minute).</summary>
    public static async Task<string> GetWhenServedAsync(int port)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                return await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/index.html"));
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(250); // the image's web server starts two seconds after SSH
            }
        }
    }

    /// <summary>The "ID PID" line the TestHost prints once its VM is up.</summary>
    public static async Task<(string Id, int Pid)> ReadStartedVmAsync(Process host)
    {
        var line = await host.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(3));
        if (line is null) Assert.Fail("the TestHost ended without starting a VM: " + await host.StandardError.ReadToEndAsync());
        var parts = line.Split(' ');
        return (parts[0], int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Sends <paramref name="signal"/> (STOP, CONT, ...) to <paramref name="pid"/> with kill(1).</summary>
    public static void Signal(string signal, int pid)
    {
        using var kill = Process.Start("kill", [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public static bool IsRunning(int pid)
    {
        try { return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z", StringComparison.Ordinal); }
        catch (IOException) { return false; }
    }

    /// <summary>Runs the dotnet CLI to the end and returns its exit code and all it printed.</summary>
    public static async Task<(int ExitCode, string Output)> RunDotnetAsync(
        IEnumerable<string> args, IReadOnlyDictionary<string, string?> environment, TimeSpan timeout, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null) info.WorkingDirectory = workingDirectory;
        foreach (var a in args) info.ArgumentList.Add(a);
        foreach (var (name, value) in environment)
        {
            if (value is null) info.Environment.Remove(name);
            else info.Environment[name] = value;
        }
        using var dotnet = Process.Start(info)!;
        var stdout = dotnet.StandardOutput.ReadToEndAsync();
        var stderr = dotnet.StandardError.ReadToEndAsync();
        await dotnet.WaitForExitAsync().WaitAsync(timeout);
        return (dotnet.ExitCode, await stdout + await stderr);
    }

    /// <summary>Runs the TestHost helper: a second process that starts VMs.</summary>
    public static Process StartHost(string stateDirectory, params string[] args) => StartHost(stateDirectory, ownProcessGroup: false, args);

    /// <summary>
    /// As <see cref="StartHost(string, string[])"/>; with <paramref name="ownProcessGroup"/> the
    /// helper leads a new session and process group (setsid), which a test can then signal as a
    /// terminal or CI runner signals a job.
    /// </summary>
    public static Process StartHost(string stateDirectory, bool ownProcessGroup, params string[] args) =>
        StartHost(stateDirectory, ownProcessGroup, new Dictionary<string, string>(), args);

    /// <summary>As <see cref="StartHost(string, string[])"/>, with more environment variables.</summary>
    public static Process StartHost(string stateDirectory, Dictionary<string, string> environment, params string[] args) =>
        StartHost(stateDirectory, ownProcessGroup: false, environment, args);

    public static Process StartHost(string stateDirectory, bool ownProcessGroup, Dictionary<string, string> environment, params string[] args)
    {
        var info = new ProcessStartInfo(ownProcessGroup ? "setsid" : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (ownProcessGroup) info.ArgumentList.Add("dotnet");
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "LinuxKit.Testing.TestHost.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["LINUXKIT_TESTING_HOME"] = stateDirectory;
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return Process.Start(info)!;
    }
}

/// <summary>A manager on a state directory of its own, removed afterwards.</summary>
public sealed class ScratchManager : IAsyncDisposable
{
    public ScratchManager(Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        State = Directory.CreateTempSubdirectory("lkt-it-").FullName;
        Manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = State, StopTimeout = TimeSpan.FromSeconds(10), Logger = logger });
    }

    public string State { get; }

    public LinuxKitManager Manager { get; }

    public static RunOptions Small => new() { Memory = 256, BootTimeout = TimeSpan.FromMinutes(3) };

    public async ValueTask DisposeAsync()
    {
        await Manager.DisposeAsync();
        await TestEnvironment.AssertNoQemuLeftAsync(State);
        Directory.Delete(State, recursive: true);
    }
}

/// <summary>A state directory for a manager a test builds itself; checked for QEMU and removed on dispose.</summary>
public sealed class ScratchState : IAsyncDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("lkt-it-").FullName;

    public async ValueTask DisposeAsync()
    {
        await TestEnvironment.AssertNoQemuLeftAsync(Path);
        Directory.Delete(Path, recursive: true);
    }
}

/// <summary>A temporary folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory(string prefix) => Path = Directory.CreateTempSubdirectory(prefix).FullName;

    public string Path { get; }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
