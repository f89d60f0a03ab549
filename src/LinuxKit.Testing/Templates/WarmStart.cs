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
        try
        {
            (template, made) = await FindOrMakeAsync(boot, image, options, hypervisor, snapshots, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not (LinuxKitBootException or OperationCanceledException))
        {
            _logger.LogWarning("{Vm} boots cold: its warm-start template could not be found or made ({Reason}).", boot.Description, e.Message);
            return null;
        }
        if (template is null) return null;

        try
        {
            return await CloneAsync(boot, template, image, options, hypervisor, snapshots, sshKeyLine, cancellationToken).ConfigureAwait(false);
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
    }

    // The template of this image and options, made by this VM's boot if no process has made it
    // (under the key's lock: one maker, the others wait for it); null when another maker takes
    // longer than a boot should (a warning says so).
    private async Task<(Template? Template, bool Made)> FindOrMakeAsync(
        BootAttempt boot, LinuxKitImage image, RunOptions options, IHypervisor hypervisor, IMemorySnapshots snapshots, CancellationToken cancellationToken)
    {
        var architecture = FirmwareChoice.Decide(image, options.Firmware, options.Architecture).Architecture;
        var inputs = TemplateKey.Inputs(image).Append(TemplateKey.Fingerprint(snapshots.BinaryFor(architecture))).ToList();
        var login = options.SshKey is null ? "own" : SshKeyPair.PublicKeyOf(options.SshKey);
        var key = TemplateKey.Compute(inputs, image, options, login, await snapshots.IdentityAsync(CanonicalSpec(image, options), cancellationToken).ConfigureAwait(false));
        if (_store.FailureOf(key) is { } failed)
        {
            TellOnce($"{boot.Record.Image} boots cold: its warm-start template {key} failed before ({failed.Reason}). `linuxkit-testing templates rm {key}` tries again.");
            return (null, false);
        }
        if (Find(key) is { } ready) return (ready, false);
        using var held = await _store.LockAsync(key, options.BootTimeout + TimeLimits.OtherTemplateMaker, cancellationToken).ConfigureAwait(false);
        if (held is null)
        {
            _logger.LogWarning("{Vm} boots cold: another process has been making warm-start template {Key} for longer than the boot timeout.", boot.Description, key);
            return (null, false);
        }
        if (Find(key) is { } madeMeanwhile) return (madeMeanwhile, false);
        // A template's RAM is a file the guest writes through: on a disk that fills up, QEMU
        // dies of SIGBUS in the middle of the boot. Without room for all of it, no template.
        var needed = (options.Memory + TemplateDiskMargin) * 1024L * 1024L;
        if (DiskUsage.FreeBytes(_store.Root) is { } free && free < needed)
        {
            _logger.LogWarning("{Vm} boots cold: a warm-start template of a {Memory} MB VM needs up to {Needed} MiB in '{Folder}', and its disk has {Free} MiB free.",
                boot.Description, options.Memory, needed / (1024 * 1024), _store.Root, free / (1024 * 1024));
            return (null, false);
        }
        return (await MakeAsync(key, inputs, image, boot, options, hypervisor, snapshots, cancellationToken).ConfigureAwait(false), true);
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

    private async Task<Template> MakeAsync(
        string key, IReadOnlyList<string> inputs, LinuxKitImage image, BootAttempt boot, RunOptions options,
        IHypervisor hypervisor, IMemorySnapshots snapshots, CancellationToken cancellationToken)
    {
        var started = _time.GetTimestamp();
        var staging = _store.Stage(key, options.BootTimeout);
        var vm = staging.Vm("tpl-" + key[..8]);
        _logger.LogInformation("{Vm}: making warm-start template {Key} (a cold boot, saved once it answers over SSH)", boot.Description, key);
        ProcessIdentity? process = null;
        OwnerWatchdog? watchdog = null;
        PortReservation? port = null;
        TimeSpan? answeredAfter = null;
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
            var spec = VmSpec.Of(vm, image, bootDisk, options) with
            {
                SshPort = port.Port,
                MemoryFile = new MemoryFile(staging.Memory, Shared: true),
            };
            // If this process dies while the template boots or is saved, its QEMU goes too, and
            // the staging folder with it.
            watchdog = OwnerWatchdog.Start(vm.PidFile, [staging.Directory]);
            process = await hypervisor.StartAsync(spec, cancellationToken).ConfigureAwait(false);
            port.Dispose();
            port = null;
            var running = process.Value;
            string hostKey;
            try
            {
                var ready = await SshReadiness.WaitAsync(
                    new SshEndpoint(Loopback.Address, spec.SshPort, options.SshUser, loginKey),
                    hypervisorExited: () => !running.IsAlive(),
                    bootFailed: () => BootFailure.InLogsOf(vm),
                    consoleTail: () => ConsoleLog.Tail(vm.ConsoleLog),
                    readinessCues: () => ReadinessCues.InConsoleOf(vm),
                    options.BootTimeout,
                    boot.Description,
                    restored: false,
                    cancellationToken).ConfigureAwait(false);
                hostKey = ready.Session.HostKeyFingerprint;
                answeredAfter = _time.GetElapsedTime(started);
                // Closed before saving: a connection saved open would be dead in every clone, its
                // server process left waiting.
                ready.Session.Dispose();
            }
            catch (LinuxKitBootException)
            {
                // The image does not boot: a cold boot would fail the same way, so this is the
                // VM's failure. Its console log gets what the boot wrote.
                await AppendConsoleAsync(vm.ConsoleLog, boot.Record.Files.ConsoleLog, cancellationToken).ConfigureAwait(false);
                throw;
            }
            await snapshots.SaveAsync(vm.ControlSocket, staging.State, cancellationToken).ConfigureAwait(false);
            await hypervisor.StopAsync(vm, running, StopMode.Fast, _stopTimeout, cancellationToken).ConfigureAwait(false);
            process = null;
            foreach (var file in new[] { vm.PidFile, vm.ControlSocket, vm.MetadataIso, vm.HypervisorLog, vm.FirmwareLog }) File.Delete(file);
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
            });
            // Both figures: the boot is a cold boot's, the rest is what warm start adds to it.
            _logger.LogInformation("Warm-start template {Key} made in {Seconds:0.0} s (it answered over SSH after {AnsweredSeconds:0.00} s)",
                key, _time.GetElapsedTime(started).TotalSeconds, answeredAfter.Value.TotalSeconds);
            foreach (var stale in _store.Prune(sizeLimit: _cacheLimit, keep: key))
            {
                _logger.LogInformation("Warm-start template {Key} removed: its image or hypervisor changed, it was unused for {Days} days, or the templates were over {Limit} MiB and it was the least recently used",
                    stale, TemplateStore.UnusedLimit.TotalDays, _cacheLimit / (1024 * 1024));
            }
            return template;
        }
        catch (Exception e)
        {
            if (process is { } p) await p.KillAsync(CancellationToken.None).ConfigureAwait(false);
            try { Directory.Delete(staging.Directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            // A template that booted and answered, then could not be saved, fails in a step only
            // warm start has, and would again. Before that (a full disk, a boot that fails as a
            // cold one would, a cancel) nothing is known about the template.
            if (answeredAfter is not null && e is not OperationCanceledException) _store.MarkFailed(Failure(key, Path.GetFullPath(boot.Record.Image), inputs, options, e.Message));
            throw;
        }
        finally
        {
            port?.Dispose();
            watchdog?.Dispose();
        }
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
        IHypervisor hypervisor, IMemorySnapshots snapshots, string sshKeyLine, CancellationToken cancellationToken)
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
        // The clone's console starts with the template's boot, as if it had booted itself.
        await AppendConsoleAsync(templateVm.ConsoleLog, files.ConsoleLog, cancellationToken).ConfigureAwait(false);
        var spec = VmSpec.Of(files, image, overlay, options) with
        {
            MemoryFile = new MemoryFile(template.Files.Memory, Shared: false),
            Incoming = true,
            // QEMU reads the kernel at start even when the state it restores has booted it: the
            // template's copy serves every clone.
            Kernel = KernelFiles.In(templateVm, image),
        };
        var ready = await _launcher.LaunchAsync(
            boot, hypervisor, spec, options, options.SshKey ?? templateVm.SshKey, options.BootTimeout < TimeLimits.Restore ? options.BootTimeout : TimeLimits.Restore,
            (process, token) => snapshots.RestoreAsync(files.ControlSocket, template.Files.State, () => !process.IsAlive(), token),
            cancellationToken).ConfigureAwait(false);
        try
        {
            if (ready.Session.HostKeyFingerprint != template.HostKeyFingerprint)
                throw new CloneRefusedException($"the restored VM shows host key {ready.Session.HostKeyFingerprint}, the template {template.HostKeyFingerprint}");
            // A clone logs in with the template's key; the VM's own goes in beside it. The
            // caller's key is the template's already: authorized_keys is left as it is.
            var ownKey = options.SshKey is null ? sshKeyLine : null;
            var renewal = await ready.Session.RunAsync(CloneIdentity.Command(_time.GetUtcNow(), CloneIdentity.Entropy(), ownKey, spec.Boot.Architecture), cancellationToken).ConfigureAwait(false);
            if (renewal.ExitCode == CloneIdentity.PartlyRenewed)
            {
                var why = $"setting the clock and reseeding need root in the guest, and an executable /tmp ({renewal.Stderr.Trim()})";
                if (options.UniqueClones) throw new CloneRefusedException($"the clone's clock and random state could not be renewed and UniqueClones is set: {why}");
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
        return ready;
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
