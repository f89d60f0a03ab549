// Measures the manager against plain tools in the same run, and prints ratios:
//   boot:   plain QEMU polled with the ssh client until a command runs, against RunAsync
//           until ready, on the dropbear and the OpenSSH image. Plain QEMU has the SDK's flags
//           as a user would write them: QEMU's default BIOS (SeaBIOS) and the network card's
//           boot ROM, where the SDK boots a kernel under qboot and leaves the ROM out;
//           The same for the dropbear userland as an ISO, booted as the SDK does by default
//           (its kernel loaded directly) and through SeaBIOS and ISOLINUX as plain QEMU does;
//                                                             target RunAsync/plain <= 0.9
//           The guest's own boot varies by seconds (OpenSSH's RSA host key), so each round
//           also measures readiness alone: from the SSH server's start line on the console
//           (both sides sample the console every 0.1 s) to the first command.
//   stop:   StopAsync, fast (the default) against graceful (an ACPI request, the only way
//           before fast stops), on both images;               target fast median <= 0.5 s
//   exec:   20 ssh client calls against 20 ExecAsync calls, of the builtin true (what the SDK
//           adds per command) and of uname -a (a process and output);
//                                       target for true: ssh/ExecAsync >= 60, ExecAsync <= 3 ms
//   warm:   RunAsync + the first command, restored from a warm-start template against a cold
//           boot, on both images (the template is made before the rounds, and its making
//           timed on its own);                                target warm/cold <= 0.2 (aim 0.1)
//   baked:  the same on images with their key baked in (the caller's key), each round in a
//           fresh state directory: cold, the first warm VM (which makes the template), a later
//           warm VM;                      target first warm <= cold + 1.5 s, warm/cold <= 0.25
//   memory: managed heap of the manager with 4 VMs up;        target < 50 MB
//           QEMU's proportional set size (PSS) of 4 warm-start clones against 4 cold VMs
//   firmware: the dropbear userland as LinuxKit's other outputs (the x86_64 kernel under BIOS
//           and under UEFI, iso-bios, iso-efi, qcow2-efi, the arm64 kernel under TCG cold
//           and warm), each row against the x86_64 kernel under BIOS
//   xUnit:  one `dotnet test` of ten class fixtures on the OpenSSH image, graceful stops
//           against fast ones (cold boots), and warm starts against cold boots (fast stops)
// At the end: each part's summary lines, then one comparison table (median and range of this
// run's samples on both sides, the ratio, the target) under a line naming the machine.
// Usage: Benchmarks DROPBEAR-IMAGE OPENSSH-IMAGE [ROUNDS [PARTS]]
//   PARTS: a comma-separated choice of boot (boot and stop), warm, firmware, baked, exec, memory, xunit; default all
using System.Diagnostics;
using System.Globalization;
using LinuxKit.Testing;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Benchmarks DROPBEAR-IMAGE OPENSSH-IMAGE [ROUNDS]");
    return 2;
}
// Each image's SSH server, and the console line it writes when it starts.
var images = new (string Server, string Path, string Started)[] { ("dropbear", args[0], "Not backgrounding"), ("OpenSSH", args[1], "Server listening on") };
var rounds = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3;
var parts = args.Length > 3 ? args[3].Split(',') : ["boot", "warm", "firmware", "baked", "exec", "memory", "xunit"];
var state = Directory.CreateTempSubdirectory("lkt-bench-").FullName;
var options = new LinuxKitManagerOptions { StateDirectory = state };
var qemu = new QemuHypervisor(null, Accelerator.Auto, NullLogger.Instance);
// Cold unless a part measures warm start: plain QEMU boots cold.
var runOptions = new RunOptions { Memory = 256, WarmStart = false };
var warmOptions = runOptions with { WarmStart = true };

try
{
    // Warm-up: JIT, accelerator probe, page cache for the image.
    await using (var warm = new LinuxKitManager(options))
    {
        var vm = await warm.RunAsync(args[0], runOptions);
        await warm.StopAsync(vm.Id);
    }

    var summary = new List<string>();
    // One row per comparison, both sides measured in this run: printed as one table at the end.
    var table = new List<TableRow>();
    // The boot part also boots the dropbear userland as an ISO against plain QEMU of the ISO
    // (SeaBIOS and ISOLINUX): as the SDK boots it by default (its ISOLINUX only starts the
    // kernel, so QEMU loads the kernel itself), then through SeaBIOS and ISOLINUX as well.
    var iso = Path.Combine(Path.GetDirectoryName(args[0])!, "linuxkit-ssh.iso");
    var bootImages = images.Select(i => (i.Server, i.Path, i.Started, Options: runOptions))
        .Append(("dropbear ISO", iso, "Not backgrounding", runOptions))
        .Append(("dropbear ISO, DirectKernelBoot = false", iso, "Not backgrounding", runOptions with { DirectKernelBoot = false }));
    foreach (var (server, path, started, bootOptions) in parts.Contains("boot") ? bootImages : [])
    {
        var image = LinuxKitImage.Resolve(path);
        var plain = new List<double>();
        var managed = new List<double>();
        var plainAfterStart = new List<double>();
        var managedAfterStart = new List<double>();
        var fastStops = new List<double>();
        var gracefulStops = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            var (plainTotal, plainStart) = await PlainBootAsync(image, started);
            plain.Add(plainTotal);
            plainAfterStart.Add(plainTotal - plainStart);
            await using var manager = new LinuxKitManager(options);
            var clock = Stopwatch.StartNew();
            var t0 = DateTimeOffset.UtcNow;
            var vm = await manager.RunAsync(path, bootOptions);
            managed.Add(clock.Elapsed.TotalSeconds);
            var startLine = (await manager.ReadConsoleAsync(vm.Id)).First(l => l.Text.Contains(started, StringComparison.Ordinal));
            managedAfterStart.Add(managed[^1] - (startLine.Time - t0).TotalSeconds);
            clock.Restart();
            await manager.StopAsync(vm.Id);
            fastStops.Add(clock.Elapsed.TotalSeconds);
            vm = await manager.RunAsync(path, bootOptions);
            clock.Restart();
            await manager.StopAsync(vm.Id, StopMode.Graceful);
            gracefulStops.Add(clock.Elapsed.TotalSeconds);
            Console.WriteLine(
                $"{server} round {round + 1}: plain QEMU + ssh poll {plain[^1]:0.00} s ({plainAfterStart[^1]:0.00} s after the server started), " +
                $"RunAsync {managed[^1]:0.00} s ({managedAfterStart[^1]:0.00} s after); " +
                $"stop fast {fastStops[^1]:0.00} s, graceful {gracefulStops[^1]:0.00} s");
        }
        table.Add(new TableRow($"cold boot to first command, {server}", "plain QEMU + ssh every 50 ms", Spread(plain, "s"), "RunAsync", Spread(managed, "s"), $"{Median(managed) / Median(plain):0.00}", "<= 0.90"));
        table.Add(new TableRow($"SSH server start to first command, {server}", "plain QEMU + ssh every 50 ms", Spread(plainAfterStart, "s"), "RunAsync", Spread(managedAfterStart, "s"), $"{Median(managedAfterStart) / Median(plainAfterStart):0.00}", ""));
        table.Add(new TableRow($"stop, {server}", "graceful (ACPI power-off)", Spread(gracefulStops, "s"), "fast (the default)", Spread(fastStops, "s"), $"{Median(fastStops) / Median(gracefulStops):0.000}", "fast <= 0.5 s"));
        summary.Add($"{server}: boot to first command (median of {rounds}): plain QEMU + ssh poll {Median(plain):0.00} s, RunAsync {Median(managed):0.00} s, ratio RunAsync/plain = {Median(managed) / Median(plain):0.00} (target <= 0.9)");
        summary.Add($"{server}: server start to first command (median of {rounds}): plain {Median(plainAfterStart):0.00} s, RunAsync {Median(managedAfterStart):0.00} s");
        summary.Add($"{server}: stop (median of {rounds}): fast {Median(fastStops):0.00} s (target <= 0.5 s), graceful {Median(gracefulStops):0.00} s, ratio fast/graceful = {Median(fastStops) / Median(gracefulStops):0.000}");
    }

    foreach (var (server, path, _) in parts.Contains("warm") ? images : [])
    {
        await using var manager = new LinuxKitManager(options);
        var clock = Stopwatch.StartNew();
        var maker = await manager.RunAsync(path, warmOptions);
        await manager.ExecAsync(maker.Id, ["true"]);
        var making = clock.Elapsed.TotalSeconds;
        await manager.StopAsync(maker.Id);
        var cold = new List<double>();
        var warm = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (times, how) in new[] { (cold, runOptions), (warm, warmOptions) })
            {
                clock.Restart();
                var vm = await manager.RunAsync(path, how);
                await manager.ExecAsync(vm.Id, ["true"]);
                times.Add(clock.Elapsed.TotalSeconds);
                if (how.WarmStart && vm.WarmStartTemplate is null) throw new InvalidOperationException("a warm round booted cold; its time is void");
                await manager.StopAsync(vm.Id);
            }
            Console.WriteLine($"{server} round {round + 1}: to the first command cold {cold[^1]:0.00} s, warm {warm[^1]:0.00} s");
        }
        table.Add(new TableRow($"RunAsync + first command, {server}", "cold boot", Spread(cold, "s"), "warm start", Spread(warm, "s"), $"{Median(warm) / Median(cold):0.00}", "<= 0.10"));
        summary.Add($"{server}: to the first command (median of {rounds}): cold boot {Median(cold):0.00} s, warm start {Median(warm):0.00} s, ratio warm/cold = {Median(warm) / Median(cold):0.00} (target <= 0.2, aim 0.1); making the template (first VM) {making:0.00} s");
    }

    // Guests with their key baked in (LinuxKit's sshd example), the caller passing the key:
    // cold boots against warm starts, each round in a fresh state directory, so that the first
    // warm VM of a round pays for making the template, as every CI job's first VM does.
    if (parts.Contains("firmware"))
    {
        // The same dropbear userland booted as LinuxKit's other outputs; each row against the
        // first (the x86_64 kernel under SeaBIOS), all in this run.
        var folder = Path.GetDirectoryName(Path.GetFullPath(args[0]))!;
        var arm64 = Path.Combine(folder, "linuxkit-ssh-arm64");
        var rows = new (string Name, string Image, RunOptions Options)[]
        {
            ("x86_64 kernel+initrd, BIOS", args[0], runOptions with { Firmware = Firmware.Bios }),
            ("x86_64 kernel+initrd, UEFI", args[0], runOptions with { Firmware = Firmware.Uefi }),
            ("iso-bios (its kernel loaded directly, the default)", Path.Combine(folder, "linuxkit-ssh.iso"), runOptions),
            ("iso-efi (UEFI)", Path.Combine(folder, "linuxkit-ssh-efi.iso"), runOptions),
            ("qcow2-efi (UEFI)", Path.Combine(folder, "linuxkit-ssh-efi.qcow2"), runOptions),
            ("arm64 kernel+initrd (TCG)", arm64, runOptions),
            ("arm64 kernel+initrd (TCG), warm", arm64, warmOptions),
        };
        await using var manager = new LinuxKitManager(options);
        // The arm64 template is made before the rounds: its rounds are restores.
        await manager.StopAsync((await manager.RunAsync(arm64, warmOptions)).Id);
        double? baseline = null;
        foreach (var (name, image, how) in rows)
        {
            var times = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                var vm = await manager.RunAsync(image, how);
                await manager.ExecAsync(vm.Id, ["true"]);
                times.Add(clock.Elapsed.TotalSeconds);
                if (how.WarmStart && vm.WarmStartTemplate is null) throw new InvalidOperationException("a warm round booted cold; its time is void");
                await manager.StopAsync(vm.Id);
            }
            baseline ??= Median(times);
            table.Add(new TableRow($"RunAsync + first command, {name}", "x86_64 kernel+initrd, BIOS", $"{baseline.Value:0.00} s", "this output", Spread(times, "s"), $"{Median(times) / baseline.Value:0.00}", ""));
            summary.Add($"firmware/arch: {name}: boot to first command (median of {rounds}) {Median(times):0.00} s, ratio to the x86_64 kernel under BIOS = {Median(times) / baseline.Value:0.00}");
        }
    }

    foreach (var (server, path, _) in parts.Contains("baked") ? images : [])
    {
        var baked = path + "-baked";
        var bakedKey = Path.Combine(Path.GetDirectoryName(path)!, "baked-key");
        var cold = new List<double>();
        var firstWarm = new List<double>();
        var warm = new List<double>();
        // The first warm VM's time less its template's boot to SSH (itself a cold boot, whose
        // length varies with the guest's host key generation): what warm start adds.
        var added = new List<double>();
        for (var round = 0; round < rounds; round++)
        {
            var roundState = Directory.CreateTempSubdirectory("lkt-bench-baked-").FullName;
            var templateLog = new TemplateLog();
            try
            {
                await using var manager = new LinuxKitManager(options with { StateDirectory = roundState, Logger = templateLog });
                foreach (var (times, how) in new[] { (cold, runOptions), (firstWarm, warmOptions), (warm, warmOptions) })
                {
                    var clock = Stopwatch.StartNew();
                    var vm = await manager.RunAsync(baked, how with { SshKey = bakedKey });
                    await manager.ExecAsync(vm.Id, ["true"]);
                    times.Add(clock.Elapsed.TotalSeconds);
                    if (how.WarmStart && vm.WarmStartTemplate is null) throw new InvalidOperationException("a warm round booted cold; its time is void");
                    await manager.StopAsync(vm.Id);
                }
            }
            finally
            {
                Directory.Delete(roundState, recursive: true);
            }
            added.Add(firstWarm[^1] - (templateLog.AnsweredSeconds ?? throw new InvalidOperationException("no warm-start template was made in a round")));
            Console.WriteLine($"{server} baked key round {round + 1}: to the first command cold {cold[^1]:0.00} s, first warm VM {firstWarm[^1]:0.00} s (its template answered after {templateLog.AnsweredSeconds:0.00} s: +{added[^1]:0.00} s), later warm {warm[^1]:0.00} s");
        }
        table.Add(new TableRow($"key baked in, first VM beyond its template's answer, {server}", "", "", "first warm VM", Spread(added, "s", signed: true), "", "<= +1.5 s"));
        table.Add(new TableRow($"key baked in, RunAsync + first command, {server}", "cold boot", Spread(cold, "s"), "later warm VM", Spread(warm, "s"), $"{Median(warm) / Median(cold):0.00}", "<= 0.25 (aim 0.10)"));
        summary.Add($"{server}, key baked in: to the first command (median of {rounds}): cold boot {Median(cold):0.00} s, first warm VM {Median(firstWarm):0.00} s (+{Median(firstWarm) - Median(cold):0.00} s over the cold boot; beyond its own template's boot +{Median(added):0.00} s, target <= +1.5 s), later warm {Median(warm):0.00} s, ratio warm/cold = {Median(warm) / Median(cold):0.00} (target <= 0.25, aim 0.1)");
    }

    // Alternating rounds on one VM, after warm-up, so that both tools see the same guest.
    if (parts.Contains("exec"))
    {
        await using var manager = new LinuxKitManager(options);
        var vm = await manager.RunAsync(args[0], runOptions);
        // QEMU's user network delivers the readiness probes' queued connections a few seconds
        // after boot; let that burst pass so it hits neither tool.
        await Task.Delay(TimeSpan.FromSeconds(8));
        for (var i = 0; i < 5; i++) await manager.ExecAsync(vm.Id, ["true"]);
        for (var i = 0; i < 2; i++) await SshCommandAsync(vm.SshKeyFile, vm.SshPort, "true");
        // The builtin true measures what the SDK adds per command; a program with output adds
        // what the guest pays for its process and for reading its output back, as users' commands do.
        var kinds = new[] { ("true", new[] { "true" }), ("uname -a", new[] { "uname", "-a" }) };
        var perKind = new List<(string Name, List<double> Ssh, List<double> Exec)>();
        foreach (var (name, argv) in kinds)
        {
            // Each call timed on its own: the median says what a command costs, the 90th
            // percentile how often the guest's scheduler or the host's make one wait.
            var sshCalls = new List<double>();
            var execCalls = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < 20; i++)
                {
                    clock.Restart();
                    await SshCommandAsync(vm.SshKeyFile, vm.SshPort, name);
                    sshCalls.Add(clock.Elapsed.TotalMilliseconds);
                }
                // The guest winds down after 20 logins (sessions end, processes exit): let that
                // pass, so that it lands in neither tool's time.
                await Task.Delay(TimeSpan.FromSeconds(1));
                for (var i = 0; i < 20; i++)
                {
                    clock.Restart();
                    await manager.ExecAsync(vm.Id, argv);
                    execCalls.Add(clock.Elapsed.TotalMilliseconds);
                }
                Console.WriteLine($"{name} round {round + 1}: ssh client median {Median(sshCalls[^20..]):0} ms, ExecAsync median {Median(execCalls[^20..]):0.0} ms (90th percentile {Percentile(execCalls[^20..], 0.9):0.0} ms)");
                await Task.Delay(TimeSpan.FromSeconds(1));
            }
            perKind.Add((name, sshCalls, execCalls));
        }
        await manager.StopAsync(vm.Id);
        foreach (var (name, sshCalls, execCalls) in perKind)
        {
            var target = name == "true" ? " (target >= 60, ExecAsync <= 3 ms)" : "";
            table.Add(new TableRow($"one command on a running VM, `{name}`", "ssh client", Spread(sshCalls, "ms"), "ExecAsync", Spread(execCalls, "ms"), $"{Median(sshCalls) / Median(execCalls):0}x faster", name == "true" ? ">= 60x, <= 3 ms" : ""));
            summary.Add($"`{name}`, {execCalls.Count} calls each: ssh client median {Median(sshCalls):0} ms, ExecAsync median {Median(execCalls):0.0} ms (90th percentile {Percentile(execCalls, 0.9):0.0} ms, mean {execCalls.Average():0.0} ms), ratio of medians ssh/ExecAsync = {Median(sshCalls) / Median(execCalls):0.0}{target}");
        }
    }

    if (parts.Contains("memory"))
    {
        await using var manager = new LinuxKitManager(options);
        var vms = new List<Container>();
        for (var i = 0; i < 4; i++) vms.Add(await manager.RunAsync(args[0], runOptions));
        foreach (var vm in vms) await manager.ExecAsync(vm.Id, ["true"]);
        var heap = GC.GetTotalMemory(forceFullCollection: true);
        var coldPss = vms.Sum(vm => ProportionalSetSize(vm.Pid));
        foreach (var vm in vms) await manager.StopAsync(vm.Id);
        summary.Add($"managed heap with 4 VMs up: {heap / 1048576.0:0.0} MB (target < 50 MB)");

        // Clones read the template's RAM from one shared page cache and copy only what they write.
        await manager.StopAsync((await manager.RunAsync(args[0], warmOptions)).Id); // the template
        vms.Clear();
        for (var i = 0; i < 4; i++) vms.Add(await manager.RunAsync(args[0], warmOptions));
        foreach (var vm in vms) await manager.ExecAsync(vm.Id, ["true"]);
        var warmPss = vms.Sum(vm => ProportionalSetSize(vm.Pid));
        foreach (var vm in vms) await manager.StopAsync(vm.Id);
        table.Add(new TableRow("managed heap, manager with 4 VMs up", "", "", "", $"{heap / 1048576.0:0.0} MB", "", "< 50 MB"));
        table.Add(new TableRow($"QEMU memory (PSS) per VM of {runOptions.Memory} MB, 4 up", "cold", $"{coldPss / 4 / 1048576.0:0} MB", "warm-start clone", $"{warmPss / 4 / 1048576.0:0} MB", $"{(double)warmPss / coldPss:0.00}", ""));
        summary.Add($"QEMU memory (PSS) of 4 VMs of {runOptions.Memory} MB: cold {coldPss / 1048576.0:0} MB, warm-start clones {warmPss / 1048576.0:0} MB, ratio warm/cold = {(double)warmPss / coldPss:0.00}");
    }

    if (parts.Contains("xunit"))
    {
        var graceful = await TenFixturesAsync(args[1], StopMode.Graceful, warm: false);
        var fast = await TenFixturesAsync(args[1], StopMode.Fast, warm: false);
        var warm = await TenFixturesAsync(args[1], StopMode.Fast, warm: true);
        table.Add(new TableRow("`dotnet test`, 10 xUnit class fixtures, OpenSSH", "cold boots, graceful stops", $"{graceful:0.0} s", "cold boots, fast stops", $"{fast:0.0} s", $"{fast / graceful:0.00}", ""));
        table.Add(new TableRow("`dotnet test`, 10 xUnit class fixtures, OpenSSH", "cold boots, fast stops", $"{fast:0.0} s", "warm starts", $"{warm:0.0} s", $"{warm / fast:0.00}", ""));
        summary.Add($"xUnit, 10 class fixtures on the OpenSSH image, cold boots: graceful stops {graceful:0.0} s, fast stops {fast:0.0} s, ratio fast/graceful = {fast / graceful:0.00}");
        summary.Add($"xUnit, 10 class fixtures on the OpenSSH image, fast stops: cold boots {fast:0.0} s, warm starts {warm:0.0} s (the template made in the run), ratio warm/cold = {warm / fast:0.00}");
    }

    Console.WriteLine();
    foreach (var line in summary) Console.WriteLine(line);
    Console.WriteLine();
    Console.WriteLine($"Machine: {await Machine.DescribeAsync(qemu.Binary)}; {rounds} rounds; {DateTime.UtcNow:yyyy-MM-dd}. Each cell: median (min to max).");
    Console.WriteLine();
    Console.WriteLine("| measure | plain tools / before | | LinuxKit.Testing | | ratio | target |");
    Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- |");
    foreach (var row in table)
        Console.WriteLine($"| {row.Measure} | {row.BaselineName} | {row.Baseline} | {row.SdkName} | {row.Sdk} | {row.Ratio} | {row.Target} |");
    return 0;
}
finally
{
    Directory.Delete(state, recursive: true);
}

// QEMU with the manager's own flags, started by hand, and the ssh client in a loop until a
// command runs: what a script would do without the SDK.
// Returns the time to the first command and the time at which the console showed the SSH
// server's start line (sampled every 0.1 s, as the manager samples it).
async Task<(double Total, double ServerStarted)> PlainBootAsync(LinuxKitImage image, string startLine)
{
    var dir = Directory.CreateTempSubdirectory("lkt-plain-").FullName;
    try
    {
        var files = new VmFiles("plain", dir);
        var publicKey = SshKeyPair.Generate(files.SshKey, "plain");
        await File.WriteAllBytesAsync(files.MetadataIso, MetadataDisk.Build(LinuxKitMetadata.Build(publicKey, []), publicKey, "benchmark", DateTime.UtcNow));
        using var port = new PortAllocator(Path.Combine(dir, "ports")).ReserveFree();
        var spec = new VmSpec
        {
            Id = "plain",
            Image = image,
            MemoryMb = runOptions.Memory,
            Cpus = 1,
            SshPort = port.Port,
            Files = files,
        };
        var clock = Stopwatch.StartNew();
        var process = await PlainQemuAsync(spec);
        port.Dispose();
        try
        {
            using var done = new CancellationTokenSource();
            var serverStarted = WatchConsoleAsync(files.ConsoleLog, startLine, clock, done.Token);
            while (await SshClientAsync(files.SshKey, spec.SshPort, "true") != 0) await Task.Delay(50);
            var total = clock.Elapsed.TotalSeconds;
            await Task.Delay(200); // a last console sample
            await done.CancelAsync();
            return (total, await serverStarted);
        }
        finally
        {
            process.Signal(UnixSignal.Kill);
            await process.WaitForExitAsync(TimeSpan.FromSeconds(10), CancellationToken.None);
        }
    }
    finally
    {
        Directory.Delete(dir, recursive: true);
    }
}

// QEMU started with the command a user would write: the SDK's, less the boot shortcuts it takes
// (qboot for kernels, no option ROM on the network card).
async Task<ProcessIdentity> PlainQemuAsync(VmSpec spec)
{
    var (accelerator, _, _) = await AcceleratorProbe.DiagnoseOnceAsync(
        AcceleratorProbe.UserCacheFolder() is { } cache ? [cache] : [], AcceleratorProbe.HostKey(qemu.Binary), () => AcceleratorProbe.DiagnoseAsync(qemu.Binary));
    spec.Files.PrepareControlSocketFolder();
    var args = QemuCommandBuilder.Build(spec, accelerator).Select(a => a.Replace(",romfile=", "", StringComparison.Ordinal)).ToList();
    var outcome = await ProcessRunner.RunAsync(qemu.Binary, args, TimeSpan.FromSeconds(60), CancellationToken.None);
    if (outcome.ExitCode != 0) throw new InvalidOperationException($"plain QEMU did not start: {outcome.Stderr}");
    return ProcessIdentity.Of(ProcessIdentity.ReadPidFile(spec.Files.PidFile) ?? 0) ?? throw new InvalidOperationException("plain QEMU exited at once");
}

static async Task<double> WatchConsoleAsync(string consoleLog, string line, Stopwatch clock, CancellationToken done)
{
    while (!done.IsCancellationRequested)
    {
        var now = clock.Elapsed.TotalSeconds;
        if (File.Exists(consoleLog) && (await File.ReadAllTextAsync(consoleLog, CancellationToken.None)).Contains(line, StringComparison.Ordinal)) return now;
        try { await Task.Delay(100, done); } catch (OperationCanceledException) { }
    }
    throw new InvalidOperationException($"the console never showed '{line}'");
}

// One `dotnet test` of ten class fixtures (built beforehand by benchmark.sh), its wall time. Each
// run has a state directory of its own: a warm run makes its template as a first run would.
static async Task<double> TenFixturesAsync(string image, StopMode stop, bool warm)
{
    var runState = Directory.CreateTempSubdirectory("lkt-bench-xunit-").FullName;
    var project = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "LinuxKit.Testing.Benchmarks.TenFixtures");
    var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in new[] { "test", project, "--configuration", "Release", "--no-build" }) info.ArgumentList.Add(a);
    info.Environment["LINUXKIT_IMAGE"] = image;
    info.Environment["LINUXKIT_BENCH_STOP"] = stop.ToString();
    info.Environment["LINUXKIT_TESTING_HOME"] = runState;
    info.Environment["LINUXKIT_TESTING_WARM_START"] = warm ? "1" : "0";
    var clock = Stopwatch.StartNew();
    using var dotnet = Process.Start(info)!;
    var output = dotnet.StandardOutput.ReadToEndAsync();
    var errors = dotnet.StandardError.ReadToEndAsync();
    await dotnet.WaitForExitAsync();
    var took = clock.Elapsed.TotalSeconds;
    Directory.Delete(runState, recursive: true);
    if (dotnet.ExitCode != 0)
        throw new InvalidOperationException($"the ten-fixture run ({stop}) failed, so its time is void:\n{await output}{await errors}");
    Console.WriteLine($"xUnit run with 10 class fixtures, {stop} stops, {(warm ? "warm starts" : "cold boots")}: {took:0.0} s");
    return took;
}

static async Task<int> SshClientAsync(string key, int port, string command)
{
    var info = new ProcessStartInfo("ssh") { RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in new[]
             {
                 "-q", "-i", key, "-p", port.ToString(CultureInfo.InvariantCulture),
                 "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "ConnectTimeout=2", "root@127.0.0.1", command,
             })
    {
        info.ArgumentList.Add(a);
    }
    using var ssh = Process.Start(info)!;
    await ssh.WaitForExitAsync();
    return ssh.ExitCode;
}

// In the exec comparison a failed ssh call would be a fast, meaningless sample.
static async Task SshCommandAsync(string key, int port, string command)
{
    var exitCode = await SshClientAsync(key, port, command);
    if (exitCode != 0) throw new InvalidOperationException($"ssh exited with {exitCode}; the exec comparison is void.");
}

// The Pss line of /proc/PID/smaps_rollup: the process's share of the memory it maps, each page
// shared by N processes counted 1/N.
static long ProportionalSetSize(int pid)
{
    var line = File.ReadLines($"/proc/{pid}/smaps_rollup").First(l => l.StartsWith("Pss:", StringComparison.Ordinal));
    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}

static double Median(List<double> values) => Percentile(values, 0.5);

// "3.57 s (3.31-4.33)": the median and the range of one run's samples.
static string Spread(List<double> values, string unit, bool signed = false)
{
    var format = unit == "ms" ? "0.0" : "0.00";
    string F(double v) => (signed && v >= 0 ? "+" : "") + v.ToString(format, CultureInfo.InvariantCulture);
    return $"{F(Median(values))} {unit} ({F(values.Min())} to {F(values.Max())})";
}

static double Percentile(List<double> values, double share)
{
    var sorted = values.Order().ToList();
    return sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * share))];
}

// Catches the template's "answered over SSH after" figure from the manager's log.
internal sealed class TemplateLog : ILogger
{
    public double? AnsweredSeconds { get; private set; }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (state is IReadOnlyList<KeyValuePair<string, object?>> values
            && values.FirstOrDefault(v => v.Key == "AnsweredSeconds").Value is double seconds)
            AnsweredSeconds = seconds;
    }
}

internal sealed record TableRow(string Measure, string BaselineName, string Baseline, string SdkName, string Sdk, string Ratio, string Target);

// What the figures depend on: cores, CPU model, QEMU's version and whether KVM can be used.
internal static class Machine
{
    public static async Task<string> DescribeAsync(string qemuBinary)
    {
        var (accelerator, whyNotKvm) = await AcceleratorProbe.DiagnoseAsync(qemuBinary);
        var model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        var memory = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        var version = Run(qemuBinary, "--version").Split('\n')[0];
        var os = File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?.Split('=', 2)[1].Trim('"') ?? "Linux";
        return $"{Environment.ProcessorCount} cores ({model}), {long.Parse(memory, CultureInfo.InvariantCulture) / 1048576.0:0} GiB, {os}, {version}, accelerator {accelerator}{(whyNotKvm is null ? "" : $" ({whyNotKvm.Split('\n')[0].Split(" (QEMU exited")[0]})")}";
    }

    private static string Run(string file, string argument)
    {
        using var process = Process.Start(new ProcessStartInfo(file, argument) { RedirectStandardOutput = true })!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output;
    }
}
