using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Lifecycle;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Templates;

/// <summary>
/// Warm start: the first VM of an image and options boots a template VM whose RAM is a file,
/// saves it as soon as it answers over SSH, and every VM of that image and options (this one
/// included) is restored from it instead of booting: under half a second instead of several.
/// The cache never fails a boot: a template that cannot be made or restored is reported as a
/// warning and the VM boots cold.
/// </summary>
internal sealed class WarmStart
{
    private readonly VmLauncher _launcher;
    private readonly TemplateStore _store;
    private readonly PortAllocator _ports;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _stopTimeout;
    private readonly long _cacheLimit;
    private readonly HashSet<string> _toldOnce = [];

    public WarmStart(VmLauncher launcher, TemplateStore store, PortAllocator ports, TimeProvider time, ILogger logger, TimeSpan stopTimeout, long cacheLimit)
    {
        _cacheLimit = cacheLimit;
        _launcher = launcher;
        _store = store;
        _ports = ports;
        _time = time;
        _logger = logger;
        _stopTimeout = stopTimeout;
    }

    /// <summary>The templates, with their size on disk, and the keys on which warm start failed.</summary>
    public IReadOnlyList<WarmStartTemplate> ListTemplates() =>
    [
        .. _store.List().Select(t => new WarmStartTemplate
        {
            Key = t.Template.Key,
            Image = t.Template.Image,
            Memory = t.Template.Memory,
            Cpus = t.Template.Cpus,
            CreatedAt = t.Template.CreatedAt,
            LastUsedAt = t.LastUsed,
            SizeOnDisk = t.Size,
            ForeignHost = HostIdentity.Elsewhere(t.Template.MadeOn, HostIdentity.Current),
        }),
        .. _store.Failures().Select(f => new WarmStartTemplate
        {
            Key = f.Key,
            Image = f.Image,
            Memory = f.Memory,
            Cpus = f.Cpus,
            CreatedAt = f.FailedAt,
            LastUsedAt = f.FailedAt,
            FailureReason = f.Reason,
            ForeignHost = HostIdentity.Elsewhere(f.MadeOn, HostIdentity.Current),
        }),
    ];

    /// <summary>Removes a template (VMs restored from it run on) or a failed key's record.</summary>
    public async Task RemoveTemplateAsync(string key, bool force, CancellationToken cancellationToken)
    {
        if (!force && _store.MadeElsewhere(key) is { } where)
            throw new LinuxKitException($"Warm-start template {key} was made {where}: its inputs cannot be judged from here and a VM there may be restoring from it, so it is not removed from here. Remove it there, or with force (`linuxkit-testing templates rm --force {key}`).");
        // Not from under a process that is making it: that one would commit it after.
        if (!await _store.RemoveWhenFreeAsync(key, TimeLimits.TemplateRemoval, cancellationToken).ConfigureAwait(false))
            throw new LinuxKitException($"Warm-start template {key} is being made by another process (its lock was held for {TimeLimits.TemplateRemoval.TotalSeconds:0} s): remove it once that boot is done.");
    }

    /// <summary>True unless <see cref="LinuxKitEnvironment.WarmStart"/> says 0, false, off or no.</summary>
    public static bool AllowedByEnvironment() =>
        LinuxKitEnvironment.IsOn(LinuxKitEnvironment.WarmStart);

    /// <summary>
    /// Restores the VM from its template (making the template first if there is none) and
    /// returns its ready session; null when it is to boot cold (warm start off or impossible
    /// for it, or the template failed: a warning says why, and nothing of the attempt is left).
    /// </summary>
    public async Task<ReadySession?> TryRestoreAsync(BootAttempt boot, LinuxKitImage image, RunOptions options, IHypervisor hypervisor, string sshKeyLine, CancellationToken cancellationToken)
    {
        if (!options.WarmStart || !AllowedByEnvironment()) return null;
        if (hypervisor is not IMemorySnapshots snapshots)
        {
            TellOnce($"{hypervisor.Kind} cannot save a running VM: VMs boot cold (warm start is QEMU's).");
            return null;
        }
        if (options.Volumes.Count > 0)
        {
            TellOnce("VMs with volumes boot cold: a mounted 9p share cannot be saved.");
            return null;
        }

        Template? template;
        bool made;
        RunningTemplate? running;
        try
        {
            (template, made, running) = await FindOrMakeAsync(boot, image, options, hypervisor, snapshots, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not (LinuxKitBootException or OperationCanceledException))
        {
            _logger.LogWarning("{Vm} boots cold: its warm-start template could not be found or made ({Reason}).", boot.Description, e.Message);
            return null;
        }
        if (template is null) return null;
        // Killed with the attempt if anything fails from here.
        if (running is not null) boot.Process = running.Process;

        try
        {
            return running is not null
                ? await AdoptAsync(boot, template, running, image, options, hypervisor, sshKeyLine, cancellationToken).ConfigureAwait(false)
                : await CloneAsync(boot, template, image, options, hypervisor, snapshots, sshKeyLine, consoleHasBoot: made, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && !IsCallersFault(e))
        {
            // A guest that refused the very first clone of a new template refuses the next one
            // too: later VMs boot cold at once. A slow restore, or a template whose files were
            // damaged since, is no verdict on the guest: the next VM makes the template again.
            var remembered = made && e is CloneRefusedException;
            _logger.LogWarning("{Vm} boots cold: it could not be restored from warm-start template {Key} ({Reason}); the template is removed{Later}.",
                boot.Description, template.Key, e.Message, remembered ? ", and later VMs of this image and options boot cold" : "");
            await boot.UndoAsync().ConfigureAwait(false);
            await _store.RemoveWhenFreeAsync(template.Key, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
            if (remembered) _store.MarkFailed(Failure(template.Key, template.Image, template.Inputs, options, e.Message));
            return null;
        }
        finally
        {
            // Released once the VM's own watchdog guards the process, or once the attempt is
            // undone (the process killed): never told to act, the pid file is the VM's.
            running?.Guard.Release();
        }
    }

    // The template of this image and options, made by this VM's boot if no process has made it
    // (under the key's lock: one maker, the others wait for it); null when another maker takes
    // longer than a boot should (a warning says so).
    private async Task<(Template? Template, bool Made, RunningTemplate? Running)> FindOrMakeAsync(
        BootAttempt boot, LinuxKitImage image, RunOptions options, IHypervisor hypervisor, IMemorySnapshots snapshots, CancellationToken cancellationToken)
    {
        var architecture = FirmwareChoice.Decide(image, options.Firmware, options.Architecture).Architecture;
        var inputs = TemplateKey.Inputs(image).Append(TemplateKey.Fingerprint(snapshots.BinaryFor(architecture))).ToList();
        var login = options.SshKey is null ? "own" : SshKeyPair.PublicKeyOf(options.SshKey);
        var key = TemplateKey.Compute(inputs, image, options, login, await snapshots.IdentityAsync(CanonicalSpec(image, options), cancellationToken).ConfigureAwait(false));
        if (_store.FailureOf(key) is { } failed)
        {
            TellOnce($"{boot.Record.Image} boots cold: its warm-start template {key} failed before ({failed.Reason}). `linuxkit-testing templates rm {key}` tries again.");
            return (null, false, null);
        }
        if (Find(key) is { } ready) return (ready, false, null);
        using var held = await _store.LockAsync(key, options.BootTimeout + TimeLimits.OtherTemplateMaker, cancellationToken).ConfigureAwait(false);
        if (held is null)
        {
            _logger.LogWarning("{Vm} boots cold: another process has been making warm-start template {Key} for longer than the boot timeout.", boot.Description, key);
            return (null, false, null);
        }
        if (Find(key) is { } madeMeanwhile) return (madeMeanwhile, false, null);
        // A template's RAM is a file the guest writes through: on a disk that fills up, QEMU
        // dies of SIGBUS in the middle of the boot. Without room for all of it, no template.
        var needed = (options.Memory + TemplateDiskMargin) * 1024L * 1024L;
        if (DiskUsage.FreeBytes(_store.Root) is { } free && free < needed)
        {
            _logger.LogWarning("{Vm} boots cold: a warm-start template of a {Memory} MB VM needs up to {Needed} MiB in '{Folder}', and its disk has {Free} MiB free.",
                boot.Description, options.Memory, needed / (1024 * 1024), _store.Root, free / (1024 * 1024));
            return (null, false, null);
        }
        var (template, running) = await MakeAsync(key, inputs, image, boot, options, hypervisor, snapshots, cancellationToken).ConfigureAwait(false);
        return (template, true, running);
    }

    // Beside the RAM: device state, the disk overlay's growth during the boot, console.
    private const int TemplateDiskMargin = 64;

    private Template? Find(string key)
    {
        var template = _store.Find(key, out var rejected);
        if (rejected is not null) _logger.LogWarning("{Reason}", rejected);
        return template;
    }

    // A fixed host port that is taken (the port reservation's or QEMU's error) would fail a cold
    // boot just the same: reported at once, and the template stays.
    private static bool IsCallersFault(Exception e) => e is LinuxKitException && e.Message.Contains("already in use", StringComparison.Ordinal);

    private void TellOnce(string message, LogLevel level = LogLevel.Information)
    {
        lock (_toldOnce)
        {
            if (!_toldOnce.Add(message)) return;
        }
        _logger.Log(level, "{Message}", message);
    }

    // The command line every clone of this image and options gets, with the parts that differ
    // per VM (folder, ports) fixed: what the template key must capture of the hypervisor.
    private static VmSpec CanonicalSpec(LinuxKitImage image, RunOptions options)
    {
        var files = new TemplateFiles("/template").Vm("template");
        var bootDisk = image.Format is ImageFormat.Qcow2 or ImageFormat.Vmdk or ImageFormat.Raw ? files.Overlay : null;
        return VmSpec.Of(files, image, bootDisk, options) with
        {
            MemoryFile = new MemoryFile("/template/memory.ram", Shared: false),
            Incoming = true,
        };
    }

    // The template boots in the folder of the VM it is made for (console, logs, pid file,
    // control socket are that VM's), with its own key, metadata, disk overlay, UEFI variables
    // and RAM file in the staging folder. Once saved it either runs on as that VM (see
    // PrepareHandOver) or is stopped for the VM to be restored from it like any later one.
    private async Task<(Template Template, RunningTemplate? Running)> MakeAsync(
        string key, IReadOnlyList<string> inputs, LinuxKitImage image, BootAttempt boot, RunOptions options,
        IHypervisor hypervisor, IMemorySnapshots snapshots, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var staging = _store.Stage(key, options.BootTimeout);
        var vm = staging.Vm("tpl-" + key[..8]);
        var files = boot.Record.Files;
        _logger.LogInformation("{Vm}: making warm-start template {Key} (a cold boot, saved once it answers over SSH)", boot.Description, key);
        ProcessIdentity? process = null;
        OwnerWatchdog? watchdog = null;
        PortReservation? port = null;
        TimeSpan? answeredAfter = null;
        List<HandedOverFile>? kept = null;
        ReadySession? session = null;
        try
        {
            // The template logs in as the VM would: with the caller's key when there is one (an
            // image with its key baked in accepts no other), else with a key of its own.
            var loginKey = options.SshKey ?? vm.SshKey;
            var keyLine = options.SshKey is null
                ? SshKeyPair.Generate(vm.SshKey, $"linuxkit-testing-template-{key}")
                : SshKeyPair.PublicKeyOf(options.SshKey);
            await PrivateFiles.WriteAsync(vm.MetadataIso, MetadataDisk.Build(LinuxKitMetadata.Build(keyLine, []), keyLine, $"linuxkit-testing-template-{key}", _time.GetUtcNow().UtcDateTime), cancellationToken).ConfigureAwait(false);
            var bootDisk = await hypervisor.PrepareBootDiskAsync(image, vm, cancellationToken).ConfigureAwait(false);
            if (image.DirectKernel is { } direct) await direct.ExtractAsync(image, vm, cancellationToken).ConfigureAwait(false);
            port = _ports.ReserveFree();
            // Booted as restricted as its clones will be: state made with an open network must
            // not reach a VM that asked for none.
            var spec = VmSpec.Of(files, image, bootDisk, options) with
            {
                // Named a template in messages and in the process list (-name), whichever VM it becomes.
                Id = vm.Id,
                SshPort = port.Port,
                MemoryFile = new MemoryFile(staging.Memory, Shared: true),
                MetadataIso = vm.MetadataIso,
                UefiVars = vm.UefiVars,
                Kernel = KernelFiles.In(vm, image),
            };
            // If this process dies while the template boots or is saved, its QEMU goes too, and
            // the staging folder with it.
            watchdog = OwnerWatchdog.Start(files.PidFile, [staging.Directory]);
            process = await hypervisor.StartAsync(spec, cancellationToken).ConfigureAwait(false);
            port.Dispose();
            port = null;
            var running = process.Value;
            // The boot is the VM's as much as the template's: its console shows it as it goes.
            var ready = await VmLauncher.WaitForSshAsync(
                files, new SshEndpoint(Loopback.Address, spec.SshPort, options.SshUser, loginKey), running, options.BootTimeout, boot.Description, restored: false, cancellationToken).ConfigureAwait(false);
            var hostKey = ready.Session.HostKeyFingerprint;
            answeredAfter = _time.GetElapsedTime(started);
            // A template that may run on as this VM is saved logged in: the VM then needs no new
            // login (under TCG most of a second for OpenSSH, which starts its server anew for
            // each connection), and each clone ends the session's processes, their client gone.
            // Otherwise closed before saving, so that no clone has them.
            session = ready;
            var handOver = options.SshPort == 0 && options.Ports.Count == 0;
            IReadOnlyList<int> savedSession = handOver ? await SessionProcessesAsync(ready.Session, cancellationToken).ConfigureAwait(false) : [];
            if (savedSession.Count == 0)
            {
                session = null;
                ready.Session.Dispose();
            }

            await snapshots.SaveAsync(files.ControlSocket, staging.State, cancellationToken).ConfigureAwait(false);
            // Clones start their console with the template's boot.
            PrivateFiles.Copy(files.ConsoleLog, vm.ConsoleLog);
            kept = handOver ? PrepareHandOver(vm, files, staging, bootDisk) : null;
            if (kept is not null)
            {
                await hypervisor.ResumeAsync(files.ControlSocket, cancellationToken).ConfigureAwait(false);
                FinishHandOver(kept);
            }
            else
            {
                session?.Session.Dispose();
                session = null;
                await hypervisor.StopAsync(files, running, StopMode.Fast, _stopTimeout, cancellationToken).ConfigureAwait(false);
                process = null;
                foreach (var file in new[] { files.PidFile, files.ControlSocket }) File.Delete(file);
            }
            File.Delete(vm.MetadataIso);
            var template = _store.Commit(staging, new Template
            {
                Key = key,
                Image = Path.GetFullPath(boot.Record.Image),
                Memory = options.Memory,
                Cpus = options.Cpus,
                CreatedAt = _time.GetUtcNow(),
                HostKeyFingerprint = hostKey,
                StateLength = new FileInfo(staging.State).Length,
                Inputs = inputs,
                MadeOn = HostIdentity.Current,
                SavedSession = savedSession,
            });
            // Both figures: the boot is a cold boot's, the rest is what warm start adds to it.
            _logger.LogInformation("Warm-start template {Key} made in {Seconds:0.0} s (it answered over SSH after {AnsweredSeconds:0.00} s){How}",
                key, _time.GetElapsedTime(started).TotalSeconds, answeredAfter.Value.TotalSeconds,
                kept is not null ? $"; it runs on as {boot.Description}" : "");
            foreach (var stale in _store.Prune(sizeLimit: _cacheLimit, keep: key))
            {
                _logger.LogInformation("Warm-start template {Key} removed: its image or hypervisor changed, it was unused for {Days} days, or the templates were over {Limit} MiB and it was the least recently used",
                    stale, TemplateStore.UnusedLimit.TotalDays, _cacheLimit / (1024 * 1024));
            }
            if (kept is null) return (template, null);
            var handedOver = new RunningTemplate(running, spec.SshPort, [.. kept.Select(f => f.Own)], watchdog, session);
            watchdog = null;
            session = null;
            return (template, handedOver);
        }
        catch (Exception e)
        {
            session?.Session.Dispose();
            if (process is { } p) await p.KillAsync(CancellationToken.None).ConfigureAwait(false);
            try { Directory.Delete(staging.Directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            // What the VM was handed goes too: the cold boot that follows makes its own.
            foreach (var own in kept?.Select(f => f.Own) ?? []) File.Delete(own);
            // A template that booted and answered, then could not be saved, fails in a step only
            // warm start has, and would again. Before that (a full disk, a boot that fails as a
            // cold one would, a cancel) nothing is known about the template.
            if (answeredAfter is not null && e is not OperationCanceledException) _store.MarkFailed(Failure(key, Path.GetFullPath(boot.Record.Image), inputs, options, e.Message));
            throw;
        }
        finally
        {
            port?.Dispose();
            // Released, never told to act: its QEMU is stopped or killed by now, and the VM's
            // next hypervisor (a clone, a cold boot) writes the same pid file.
            watchdog?.Release();
        }
    }

    // The template runs on as the VM it was made for instead of being stopped and restored: the
    // restore and a login to a guest whose translated code is gone are what a first VM's warm
    // start costs beyond its boot. What QEMU goes on writing becomes the VM's, and a copy of each
    // file, taken while the guest is frozen after the save, stays for the template: the RAM file
    // is renamed into the VM's folder at once (QEMU keeps its mapping) and copied back; the disk
    // images (overlay, UEFI variables) are copied beside themselves, and swapped only once the
    // guest runs (FinishHandOver), because QEMU opens them again by name when it takes back the
    // write access it gave up for the save. Null, with nothing changed, when the files cannot be
    // moved or copied (another file system, no room).
    private List<HandedOverFile>? PrepareHandOver(VmFiles template, VmFiles vm, TemplateFiles staging, string? bootDisk)
    {
        var disks = new List<HandedOverFile>();
        if (bootDisk is not null) disks.Add(new HandedOverFile(bootDisk, vm.Overlay));
        if (File.Exists(template.UefiVars)) disks.Add(new HandedOverFile(template.UefiVars, vm.UefiVars));
        var memoryMoved = false;
        try
        {
            PrivateFiles.Rename(staging.Memory, vm.Memory);
            memoryMoved = true;
            PrivateFiles.CopySparse(vm.Memory, staging.Memory);
            foreach (var disk in disks)
            {
                if (File.Exists(disk.Own)) throw new IOException($"'{disk.Own}' exists already.");
                PrivateFiles.CopySparse(disk.Running, disk.Copy);
            }
            return [new HandedOverFile(staging.Memory, vm.Memory, Moved: true), .. disks];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Put back as it was: the template is then stopped and the VM restored from it.
            foreach (var disk in disks) File.Delete(disk.Copy);
            if (memoryMoved)
            {
                File.Delete(staging.Memory);
                PrivateFiles.Rename(vm.Memory, staging.Memory);
            }
            _logger.LogDebug("VM {Id}: the template is not handed over, its files cannot be moved ({Reason})", vm.Id, e.Message);
            return null;
        }
    }

    // Once the guest runs on: its disk images become the VM's, their copies the template's.
    private static void FinishHandOver(IEnumerable<HandedOverFile> files)
    {
        foreach (var file in files.Where(f => !f.Moved))
        {
            PrivateFiles.Rename(file.Running, file.Own);
            PrivateFiles.Rename(file.Copy, file.Running);
        }
    }

    /// <summary>A file the running template writes: where it is, where the VM keeps it, and its copy for the template before the swap.</summary>
    private sealed record HandedOverFile(string Running, string Own, bool Moved = false)
    {
        public string Copy => Running + ".copy";
    }

    /// <summary>A template just made that runs on as the VM it was made for, still guarded by the template's watchdog.</summary>
    private sealed record RunningTemplate(ProcessIdentity Process, int SshPort, IReadOnlyList<string> RuntimeFiles, OwnerWatchdog Guard, ReadySession? Session);

    // The guest processes that hold an SSH session of the SDK's: its shell ($$), the shell the
    // server started it with, and that one's parent, the server's process for the connection,
    // which a clone ends to end the connection. Empty when the guest cannot say, or when that
    // process is not the SSH user's (dropbear's stays root's for a non-root login): a clone could
    // not end it, so the session is not saved open.
    private static async Task<IReadOnlyList<int>> SessionProcessesAsync(SshSession session, CancellationToken cancellationToken)
    {
        ExecResult result;
        try
        {
            result = await session.RunAsync("read -r _ _ _ server _ < /proc/$PPID/stat && [ \"$(stat -c %u /proc/$server)\" = \"$(id -u)\" ] && echo \"$server $PPID $$\"", cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is LinuxKitException or Renci.SshNet.Common.SshException or IOException)
        {
            return [];
        }
        var pids = result.Stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(p => int.TryParse(p, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid) ? pid : 0)
            .ToList();
        return result.ExitCode == 0 && pids.Count == 3 && pids.All(p => p > 1) ? pids : [];
    }

    private TemplateFailure Failure(string key, string image, IReadOnlyList<string> inputs, RunOptions options, string reason) => new()
    {
        Key = key,
        Image = image,
        Memory = options.Memory,
        Cpus = options.Cpus,
        Reason = reason,
        FailedAt = _time.GetUtcNow(),
        Inputs = inputs,
        MadeOn = HostIdentity.Current,
    };

    private async Task<ReadySession> CloneAsync(
        BootAttempt boot, Template template, LinuxKitImage image, RunOptions options,
        IHypervisor hypervisor, IMemorySnapshots snapshots, string sshKeyLine, bool consoleHasBoot, CancellationToken cancellationToken)
    {
        var files = boot.Record.Files;
        var templateVm = template.Files.Vm("template");
        string? overlay = null;
        if (File.Exists(templateVm.Overlay))
        {
            overlay = files.Overlay;
            await snapshots.CreateOverlayAsync(templateVm.Overlay, overlay, cancellationToken).ConfigureAwait(false);
            boot.Record = boot.Record with { RuntimeFiles = [overlay] };
        }
        // A UEFI guest's variables are part of its state: each clone starts from the template's.
        if (File.Exists(templateVm.UefiVars)) PrivateFiles.Copy(templateVm.UefiVars, files.UefiVars);
        // The clone's console starts with the template's boot, as if it had booted itself (the
        // VM the template was made for has it already).
        if (!consoleHasBoot) await AppendConsoleAsync(templateVm.ConsoleLog, files.ConsoleLog, cancellationToken).ConfigureAwait(false);
        var spec = VmSpec.Of(files, image, overlay, options) with
        {
            MemoryFile = new MemoryFile(template.Files.Memory, Shared: false),
            Incoming = true,
            // QEMU reads the kernel at start even when the state it restores has booted it: the
            // template's copy serves every clone.
            Kernel = KernelFiles.In(templateVm, image),
        };
        var ready = await _launcher.LaunchAsync(
            boot, hypervisor, spec, options, options.SshKey ?? templateVm.SshKey, RestoreTimeout(options),
            (process, token) => snapshots.RestoreAsync(files.ControlSocket, template.Files.State, () => !process.IsAlive(), token),
            cancellationToken).ConfigureAwait(false);
        await MakeOwnAsync(boot, ready, template, options, sshKeyLine, spec.Boot.Architecture, clone: true, cancellationToken).ConfigureAwait(false);
        return ready;
    }

    // The template made for this VM, running on: the VM's own from here.
    private async Task<ReadySession> AdoptAsync(
        BootAttempt boot, Template template, RunningTemplate running, LinuxKitImage image, RunOptions options,
        IHypervisor hypervisor, string sshKeyLine, CancellationToken cancellationToken)
    {
        boot.Record = boot.Record with { RuntimeFiles = [.. running.RuntimeFiles] };
        ReadySession ready;
        try
        {
            ready = await _launcher.AdoptAsync(
                boot, hypervisor, running.Process, running.SshPort, options.SshKey ?? template.Files.Vm("template").SshKey, RestoreTimeout(options),
                releasePreviousGuard: running.Guard.Release, running.Session, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            running.Session?.Session.Dispose();
            throw;
        }
        var architecture = FirmwareChoice.Decide(image, options.Firmware, options.Architecture).Architecture;
        await MakeOwnAsync(boot, ready, template, options, sshKeyLine, architecture, clone: false, cancellationToken).ConfigureAwait(false);
        return ready;
    }

    private static TimeSpan RestoreTimeout(RunOptions options) => options.BootTimeout < TimeLimits.Restore ? options.BootTimeout : TimeLimits.Restore;

    // What every VM of a template runs once it answers: the clock and random state renewed (the
    // guest slept since the save; a clone woke with the template's), the VM's own key installed
    // beside the template's when the caller gave none (the caller's key is the template's
    // already: authorized_keys is then left as it is).
    private async Task MakeOwnAsync(
        BootAttempt boot, ReadySession ready, Template template, RunOptions options, string sshKeyLine, GuestArchitecture architecture, bool clone, CancellationToken cancellationToken)
    {
        try
        {
            if (ready.Session.HostKeyFingerprint != template.HostKeyFingerprint)
                throw new CloneRefusedException($"the restored VM shows host key {ready.Session.HostKeyFingerprint}, the template {template.HostKeyFingerprint}");
            var ownKey = options.SshKey is null ? sshKeyLine : null;
            var renewal = await ready.Session.RunAsync(CloneIdentity.Command(_time.GetUtcNow(), CloneIdentity.Entropy(), ownKey, architecture, clone ? template.SavedSession : null), cancellationToken).ConfigureAwait(false);
            if (renewal.ExitCode == CloneIdentity.PartlyRenewed)
            {
                var why = $"setting the clock and reseeding need root in the guest, and an executable /tmp ({renewal.Stderr.Trim()})";
                if (options.UniqueClones && clone) throw new CloneRefusedException($"the clone's clock and random state could not be renewed and UniqueClones is set: {why}");
                if (options.UniqueClones)
                {
                    // This VM is the template itself, its own; the clones to come would not be.
                    _logger.LogWarning("{Vm} runs on as warm-start template {Key}, which is removed: its clones' clock and random state could not be renewed and UniqueClones is set ({Why}); later VMs of this image and options boot cold.",
                        boot.Description, template.Key, why);
                    await _store.RemoveWhenFreeAsync(template.Key, TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
                    _store.MarkFailed(Failure(template.Key, template.Image, template.Inputs, options, $"UniqueClones is set and a clone's clock and random state could not be renewed: {why}"));
                    return;
                }
                TellOnce($"Warm-start clones of {boot.Record.Image} keep the template's clock and random state, shared with every other clone: {why}. Set RunOptions.UniqueClones to boot such VMs cold.", LogLevel.Warning);
            }
            else if (renewal.ExitCode != 0)
                throw new CloneRefusedException($"the VM's own key could not be installed (exit code {renewal.ExitCode}: {renewal.Stderr.Trim()})");
        }
        catch
        {
            ready.Session.Dispose();
            throw;
        }
        boot.Record = boot.Record with { Template = template.Key };
    }

    private static async Task AppendConsoleAsync(string from, string to, CancellationToken cancellationToken)
    {
        if (!File.Exists(from)) return;
        if (!File.Exists(to)) PrivateFiles.Create(to).Dispose();
        var source = ConsoleLog.Open(from);
        await using (source.ConfigureAwait(false))
        {
            var target = new FileStream(to, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
            await using (target.ConfigureAwait(false))
            {
                await source.CopyToAsync(target, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The guest refused a step of making a clone its own: it would refuse it again.</summary>
    private sealed class CloneRefusedException(string message) : LinuxKitException(message);
}
