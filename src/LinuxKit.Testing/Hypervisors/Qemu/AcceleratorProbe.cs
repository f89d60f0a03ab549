using System.Diagnostics;
using System.Text.Json;
using LinuxKit.Testing.State;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>
/// Whether KVM runs a guest on this host, found once per boot of the host: the answer depends
/// only on the QEMU binary, /dev/kvm and the running kernel, and finding it costs a QEMU start
/// (seconds where KVM crawls), so it is kept in the state directory and in the user's cache
/// folder and reused by every later process (builds, test hosts, the tool), whatever state
/// directory it uses, until one of those changes.
/// </summary>
internal static class AcceleratorProbe
{
    /// <summary>The file, in the state directory's host folder, that keeps the answer.</summary>
    public const string CacheFileName = "accelerator.json";

    internal sealed record Answer(string Key, Accelerator Accelerator, string? WhyNotKvm);

    /// <summary>The accelerator QEMU can use here and, when it is not KVM on Linux, why not; probed afresh.</summary>
    public static async Task<(Accelerator Accelerator, string? WhyNotKvm)> DiagnoseAsync(string binary)
    {
        if (OperatingSystem.IsMacOS()) return (Accelerator.Hvf, null);
        if (!CanOpenKvm(out var why)) return (Accelerator.Tcg, $"KVM is not available ({why})");
        var probe = await RunProbeGuestAsync(binary, "kvm").ConfigureAwait(false);
        return probe is null ? (Accelerator.Kvm, null) : (Accelerator.Tcg, $"/dev/kvm opens but KVM does not run a guest here ({probe})");
    }

    /// <summary>
    /// The accelerator for arm64 guests on an arm64 host: HVF on macOS, KVM where /dev/kvm
    /// opens. (The guest probe is an x86 program; an arm64 host is not probed by running one.)
    /// </summary>
    public static Accelerator DiagnoseArm64Host() =>
        OperatingSystem.IsMacOS() ? Accelerator.Hvf : CanOpenKvm(out _) ? Accelerator.Kvm : Accelerator.Tcg;

    /// <summary>
    /// The answer kept in the first of <paramref name="cacheFolders"/> that holds one found for
    /// the same <paramref name="key"/>, else <paramref name="diagnose"/>'s; either way it is then
    /// kept in every folder that lacks it.
    /// </summary>
    /// <returns>The answer and whether it came from a cache.</returns>
    public static async Task<(Accelerator Accelerator, string? WhyNotKvm, bool Cached)> DiagnoseOnceAsync(
        IReadOnlyList<string> cacheFolders, string key, Func<Task<(Accelerator Accelerator, string? WhyNotKvm)>> diagnose)
    {
        var paths = cacheFolders.Select(folder => Path.Combine(folder, CacheFileName)).ToList();
        var kept = paths.Select(Read).ToList();
        var found = kept.FirstOrDefault(answer => answer?.Key == key);
        var answer = found ?? await Diagnosed().ConfigureAwait(false);
        for (var i = 0; i < paths.Count; i++)
        {
            if (kept[i] != answer) Write(paths[i], answer);
        }
        return (answer.Accelerator, answer.WhyNotKvm, found is not null);

        async Task<Answer> Diagnosed()
        {
            var (accelerator, whyNotKvm) = await diagnose().ConfigureAwait(false);
            return new Answer(key, accelerator, whyNotKvm);
        }
    }

    /// <summary>
    /// The user's own folder for answers about this host: $XDG_CACHE_HOME/linuxkit-testing, else
    /// ~/.cache/linuxkit-testing, made private; null when it cannot be made (only a cache).
    /// </summary>
    public static string? UserCacheFolder()
    {
        var cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(cacheHome))
        {
            var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            if (string.IsNullOrEmpty(home)) return null;
            cacheHome = Path.Combine(home, ".cache");
        }
        var folder = Path.Combine(cacheHome, "linuxkit-testing");
        try
        {
            PrivateFiles.CreateFolder(folder);
            return folder;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// What decides the answer on this host: the QEMU binary (path, size, modification time), the
    /// presence of /dev/kvm, and the kernel's boot id (a new boot may bring another
    /// kernel, module or virtualisation setting).
    /// </summary>
    public static string HostKey(string binary)
    {
        var qemu = new FileInfo(binary);
        var kvm = File.Exists("/dev/kvm") ? "kvm:present" : "kvm:none";
        string boot;
        try { boot = File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { boot = "unknown"; }
        return $"{qemu.FullName}|{qemu.Length}|{qemu.LastWriteTimeUtc.Ticks}|{kvm}|boot:{boot}";
    }

    private static Answer? Read(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<Answer>(File.ReadAllText(path)) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException or NotSupportedException)
        {
            return null; // a damaged or unreadable answer is found again
        }
    }

    private static void Write(string path, Answer answer)
    {
        // Two processes may find it at once: each writes its own file and renames it over.
        var temp = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            using (var file = PrivateFiles.Create(temp)) JsonSerializer.Serialize(file, answer);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only a cache: the next process probes again.
            try { File.Delete(temp); } catch (IOException) { }
        }
    }

    private static bool CanOpenKvm(out string why)
    {
        try
        {
            using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            why = "";
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            why = "/dev/kvm: " + e.Message;
            return false;
        }
    }

    // How long the probe's guest may take under KVM, and (through coreutils' timeout) how long
    // its QEMU can live whatever happens to the process that started it: killed with its
    // owner's process tree, it would otherwise run on, since nothing else ever stops it. Under a
    // working KVM, or under TCG, the probe's guest reports in well under a second, QEMU's start
    // included.
    private static readonly TimeSpan ProbeBudget = TimeSpan.FromSeconds(5);
    private const string ProbeLifetimeSeconds = "10";
    private const string StartMarker = "linuxkit-kvm-probe-start";
    private const string EndMarker = "linuxkit-kvm-probe-end";

    // The guest's loop takes about 0.2 s under TCG and a few milliseconds under KVM: a loop
    // that has not ended this long after it began is KVM crawling.
    private static readonly TimeSpan LoopBudget = TimeSpan.FromSeconds(1);

    // Some hosts (nested or sandboxed virtualisation) expose a /dev/kvm that cannot run a guest
    // usefully: QEMU aborts, or the guest hangs, or it crawls. Seen on this project's CI: the
    // firmware runs and reaches its debug port, but guest code barely progresses (a loop TCG
    // ends in 0.3 s had not ended after 30 s), so a kernel never reaches its console. So the
    // probe runs guest code: a multiboot payload that QEMU's loader enters in 32-bit protected
    // mode, which writes a marker to the debug port, counts down a loop and writes another.
    // Returns null when the accelerator (kvm; tcg to check the probe itself) runs it within the
    // budget, else the reason.
    internal static async Task<string?> RunProbeGuestAsync(string binary, string accelerator)
    {
        var dir = Directory.CreateTempSubdirectory("linuxkit-kvm-probe-");
        var debugLog = Path.Combine(dir.FullName, "debug.log");
        var payload = Path.Combine(dir.FullName, "probe.bin");
        await File.WriteAllBytesAsync(payload, MultibootPayload(StartMarker, EndMarker)).ConfigureAwait(false);
        var timeout = Processes.ProcessRunner.FindOnPath("timeout");
        var info = new ProcessStartInfo(timeout ?? binary)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        if (timeout is not null)
        {
            foreach (var arg in new[] { "-s", "KILL", ProbeLifetimeSeconds, binary }) info.ArgumentList.Add(arg);
        }
        foreach (var arg in new[]
                 {
                     "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", accelerator, "-cpu", "max", "-m", "16", "-display", "none",
                     "-kernel", payload,
                     "-chardev", $"file,id=debug,path={QemuCommandBuilder.Escape(debugLog)}", "-device", "isa-debugcon,iobase=0x402,chardev=debug",
                 })
        {
            info.ArgumentList.Add(arg);
        }
        try
        {
            using var qemu = Process.Start(info)!;
            var stderr = qemu.StandardError.ReadToEndAsync();
            string Written()
            {
                try { return File.Exists(debugLog) ? File.ReadAllText(debugLog) : ""; }
                catch (IOException) { return ""; }
            }
            var deadline = Stopwatch.StartNew();
            TimeSpan? loopStarted = null;
            string? verdict = null;
            while (verdict is null)
            {
                var written = Written();
                if (written.Contains(EndMarker, StringComparison.Ordinal)) break;
                if (loopStarted is null && written.Contains(StartMarker, StringComparison.Ordinal)) loopStarted = deadline.Elapsed;
                if (qemu.HasExited)
                    verdict = $"QEMU exited with code {qemu.ExitCode}: {(await stderr.ConfigureAwait(false)).Trim()}";
                else if (loopStarted is { } began && deadline.Elapsed - began > LoopBudget)
                    verdict = $"a loop that TCG runs in a fraction of a second did not end within {LoopBudget.TotalSeconds:0} s under {accelerator}: nested or emulated virtualisation too slow to use";
                else if (deadline.Elapsed > ProbeBudget)
                    verdict = $"a minimal guest did not run within {ProbeBudget.TotalSeconds:0} s under {accelerator}";
                else
                    await Task.Delay(50).ConfigureAwait(false);
            }
            if (!qemu.HasExited) qemu.Kill(entireProcessTree: true);
            return verdict;
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// A multiboot (version 1) image that QEMU's -kernel loads at 1 MiB and enters in 32-bit
    /// protected mode; it writes <paramref name="start"/> to port 0x402 (isa-debugcon), counts
    /// down 50 million, writes <paramref name="end"/> and halts.
    /// The header's address fields (flag bit 16) make it loadable without ELF headers.
    /// </summary>
    internal static byte[] MultibootPayload(string start, string end)
    {
        const uint LoadAddress = 0x100000;
        const uint HeaderLength = 32;
        var code = new List<byte> { 0x66, 0xBA, 0x02, 0x04 };                                 // mov dx, 0x402
        void Write(string text)
        {
            foreach (var c in "\n" + text + "\n") code.AddRange([0xB0, (byte)c, 0xEE]);        // mov al, c; out dx, al
        }
        Write(start);
        code.AddRange([0xB9, 0x80, 0xF0, 0xFA, 0x02, 0x49, 0x75, 0xFD]);                      // mov ecx, 50000000; dec ecx; jnz $-1
        Write(end);
        code.AddRange([0xFA, 0xF4, 0xEB, 0xFD]);                                               // cli; hlt; jmp $-1
        const uint Magic = 0x1BADB002, Flags = 0x00010000;
        var loadEnd = LoadAddress + HeaderLength + (uint)code.Count;
        var header = new[] { Magic, Flags, unchecked(0u - (Magic + Flags)), LoadAddress, LoadAddress, loadEnd, loadEnd, LoadAddress + HeaderLength };
        var image = new byte[HeaderLength + code.Count];
        for (var i = 0; i < header.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(i * 4, 4), header[i]);
        code.CopyTo(image, (int)HeaderLength);
        return image;
    }
}
