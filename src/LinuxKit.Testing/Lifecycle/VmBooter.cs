using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.Logs;
using LinuxKit.Testing.Networking;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.Ssh;
using LinuxKit.Testing.State;
using LinuxKit.Testing.Templates;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Lifecycle;

/// <summary>
/// Brings one VM from nothing to answering over SSH: its id and name claimed with a Starting
/// record, its key and metadata disk, then a warm start when its template serves, else a cold
/// boot through the launcher. A boot that fails or is cancelled leaves nothing running and a
/// record that says Error, with the console log kept for a post-mortem.
/// </summary>
internal sealed class VmBooter(
    VmRegistry registry, VmRuntime runtime, VmLauncher launcher, WarmStart warmStart, LinuxKitManagerOptions options, ILogger logger, TimeProvider time)
{
    private StateStore Store => registry.Store;

    public async Task<Container> RunAsync(string image, LinuxKitImage resolved, RunOptions run, IHypervisor hypervisor, CancellationToken cancellationToken)
    {
        var bootStarted = time.GetTimestamp();
        // The name is checked and the Starting record saved under one lock: two boots of one
        // name at once cannot both pass.
        var record = await Store.LockedAsync(
            () =>
            {
                var claimed = NewRecord(Store.Files(ClaimId(run.Name)), image, resolved, run, hypervisor.Kind) with { StartedAt = time.GetUtcNow() };
                try
                {
                    Store.Save(claimed);
                }
                catch (LinuxKitException)
                {
                    Store.Delete(claimed.Id); // a folder without a record would be nobody's
                    throw;
                }
                return claimed;
            },
            cancellationToken).ConfigureAwait(false);
        var id = record.Id;
        var files = record.Files;
        var boot = new BootAttempt(record, run.Name is null ? $"VM {id}" : $"VM {id} ({run.Name})");
        logger.LogInformation("Booting {Vm} from {Image} ({Format})", boot.Description, resolved.Path, resolved.Format);

        try
        {
            var sshKeyLine = run.SshKey is null
                ? SshKeyPair.Generate(record.SshKeyFile, $"linuxkit-testing-{id}")
                : SshKeyPair.PublicKeyOf(run.SshKey);
            var shares = run.Volumes.Select((v, i) => new VolumeShare($"vol{i}", Path.GetFullPath(v.Key), v.Value)).ToList();
            var metadata = LinuxKitMetadata.Build(sshKeyLine, shares.Select(s => (s.Tag, s.GuestPath)).ToList());
            await PrivateFiles.WriteAsync(files.MetadataIso, MetadataDisk.Build(metadata, sshKeyLine, $"linuxkit-testing-{id}", time.GetUtcNow().UtcDateTime), cancellationToken).ConfigureAwait(false);
            boot.Record = boot.Record with { Volumes = shares.ToDictionary(s => s.HostPath, s => s.GuestPath) };
            // From the first byte: a warm start copies its template's boot into the log.
            runtime.WatchConsole(id, ConsoleWatcher.Start(files.ConsoleLog, run.ConsoleOutput, options.ConsoleLogLimit));

            var ready = await warmStart.TryRestoreAsync(boot, resolved, run, hypervisor, sshKeyLine, cancellationToken).ConfigureAwait(false);
            if (ready is null)
            {
                var bootDisk = await hypervisor.PrepareBootDiskAsync(resolved, files, cancellationToken).ConfigureAwait(false);
                if (bootDisk is not null) boot.Record = boot.Record with { RuntimeFiles = [bootDisk] };
                if (resolved.DirectKernel is { } direct) await direct.ExtractAsync(resolved, files, cancellationToken).ConfigureAwait(false);
                var spec = VmSpec.Of(files, resolved, bootDisk, run) with { Volumes = shares, Metadata = metadata };
                ready = await launcher.LaunchAsync(boot, hypervisor, spec, run, record.SshKeyFile, run.BootTimeout, restore: null, cancellationToken).ConfigureAwait(false);
            }
            runtime.Sessions.Add(id, ready.Session);
            boot.Record = boot.Record with { Status = ContainerStatus.Running, HostKeyFingerprint = ready.Session.HostKeyFingerprint, HostKey = ready.Session.HostKey };
            if (run.Detach) boot.Record = boot.Record with { OwnerPid = null, OwnerStartTime = null };
            await registry.SaveWhileStartingAsync(boot.Record, boot.Description, cancellationToken).ConfigureAwait(false);
            if (run.Detach) runtime.Detach(id);
            logger.LogInformation(
                "{Vm} is ready after {Seconds:0.0} s, {Connections} SSH connections ({Banner}; ssh {User}@{Host} -p {Port}){How}",
                boot.Description, time.GetElapsedTime(bootStarted).TotalSeconds,
                ready.Connections, ready.Banner, boot.Record.SshUser, Loopback.Address, boot.Record.SshPort,
                boot.Record.Template is { } template ? $", restored from warm-start template {template}" : "");
            logger.LogDebug("{Vm} readiness: {Timeline}", boot.Description, ready.Timeline);
            return boot.Record.ToContainer();
        }
        catch (Exception e)
        {
            logger.LogError("{Vm} failed to boot: {Reason}", boot.Description, e.Message);
            await AbandonAsync(boot, e).ConfigureAwait(false);
            // A file of its own that could not be written (a full disk): said with where.
            if (e is IOException && e is not EndOfStreamException)
                throw new LinuxKitException($"{boot.Description} cannot boot: writing its files in '{files.Directory}' failed: {e.Message}", e);
            throw;
        }
    }

    private string ClaimId(string? name)
    {
        if (name is not null)
        {
            foreach (var existing in Store.LoadAll().Where(r => r.Name == name))
            {
                if (registry.Refresh(existing).Status.IsLive())
                    throw new LinuxKitException($"A VM named '{name}' is already running (id {existing.Id}). Stop it first, or choose another name.");
                Store.Delete(existing.Id); // a stopped VM gives up its name
            }
        }
        var id = Store.NewId();
        PrivateFiles.CreateFolder(Store.VmDirectory(id));
        return id;
    }

    // StartedAt is set by the caller, on the manager's clock.
    private static VmRecord NewRecord(VmFiles files, string image, LinuxKitImage resolved, RunOptions run, HypervisorKind kind) => new()
    {
        Id = files.Id,
        Name = run.Name,
        Image = image,
        Format = resolved.Format,
        Hypervisor = kind,
        Status = ContainerStatus.Starting,
        Memory = run.Memory,
        Cpus = run.Cpus,
        SshUser = run.SshUser,
        SshKeyFile = run.SshKey is null ? files.SshKey : Path.GetFullPath(run.SshKey),
        Detached = run.Detach,
        // A detached VM is owned until it runs: a boot its process cannot finish is an orphan.
        OwnerPid = Environment.ProcessId,
        OwnerStartTime = ProcessIdentity.Of(Environment.ProcessId)?.StartTime,
        Host = HostIdentity.Current,
        StopMode = run.StopMode,
        Files = files,
    };

    // The record as the boot left it (its pid, its files) says Error.
    private async Task AbandonAsync(BootAttempt boot, Exception reason)
    {
        var record = boot.Record;
        await boot.UndoAsync().ConfigureAwait(false);
        await runtime.ReleaseAsync(record.Id, forget: true).ConfigureAwait(false);
        try
        {
            // A stop from another process during the boot stays what the record says.
            var failed = record with { Status = ContainerStatus.Error, StoppedAt = time.GetUtcNow() };
            await Store.LockedAsync(() => Store.SaveIf(failed, ContainerStatus.Starting), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or LinuxKitException)
        {
            logger.LogWarning("Could not record the failure of VM {Id}: {Reason} (after: {Cause})", record.Id, e.Message, reason.Message);
        }
    }
}
