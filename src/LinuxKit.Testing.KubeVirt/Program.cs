using System.Globalization;
using System.Runtime.InteropServices;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.KubeVirt;
using LinuxKit.Testing.Processes;

// The local end of KubeVirt VMs (see KubeVirtHypervisor in the core, which runs this program):
//   run     makes a VM's VMI and lives as long as it: the VM's ports on loopback, its console in
//           the console log; on SIGTERM, or when the VMI ends, it deletes the VMI and exits.
//   delete  deletes one VMI.
//   prune   deletes the SDK's VMIs whose bridge on this machine is gone, and any past its expiry.
//   check   lists the SDK's VMIs: the cluster answers, takes the credentials, and serves kubevirt.io/v1.
// Errors go to stderr (the VM's hypervisor log) and exit 1; a wrong command line exits 2.
try
{
    var parsed = BridgeArguments.Parse(args);
    return parsed.Verb switch
    {
        "run" => await Bridge.RunAsync(parsed),
        "delete" => await Bridge.DeleteAsync(parsed),
        "prune" => await Bridge.PruneAsync(parsed),
        "check" => await Bridge.CheckAsync(parsed),
        _ => throw new ArgumentException($"Unknown command '{parsed.Verb}': run, delete, prune or check."),
    };
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    return 2;
}
catch (BridgeException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    return 1;
}

namespace LinuxKit.Testing.KubeVirt
{
    internal static class Bridge
    {
        private static readonly TimeSpan StatusInterval = TimeSpan.FromSeconds(2);
        private static readonly TimeSpan DeleteBudget = TimeSpan.FromSeconds(30);

        public static async Task<int> RunAsync(BridgeArguments args)
        {
            using var api = KubeVirtApi.Connect(args);
            var name = args.Required("--name");
            var lease = TimeSpan.FromSeconds(args.Number("--lease"));
            var self = ProcessIdentity.Of(Environment.ProcessId) ?? throw new BridgeException("The bridge cannot read its own process identity.");
            var request = new VmiRequest
            {
                Name = name,
                Disk = Disk(args.Required("--disk")),
                MemoryMb = args.Number("--memory"),
                Cpus = args.Number("--cpus"),
                Uefi = args.Flag("--uefi"),
                Architecture = args.Optional("--architecture"),
                UserData = await File.ReadAllBytesAsync(args.Required("--user-data")),
                OwnerHost = args.Required("--owner-host"),
                OwnerPid = self.Pid,
                OwnerStartTime = self.StartTime,
                OwnerNamespace = Orphans.Here,
                OwnerBoot = Orphans.Boot,
                OwnerToken = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)).ToLowerInvariant(),
                // The first term covers the wait for the cluster to schedule and start the VMI too:
                // the bridge renews the lease only once the VMI runs.
                ExpiresAt = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(args.Number("--schedule-timeout")) + lease,
            };
            var forwards = args.All("--forward").Select(Forward).Prepend((Host: args.Number("--ssh-port"), Guest: 22)).ToList();

            using var stop = new CancellationTokenSource();
            // SIGTERM (a stop, the owner's watchdog) ends the VM; Ctrl-C and a closing terminal
            // reach the whole process group and must not.
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = true);
            using var hangUp = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => context.Cancel = true);

            var created = false;
            string? uid = null;
            var listeners = new List<LoopbackForward>();
            Task? console = null;
            try
            {
                // The ports first: one that is taken fails the VM before the cluster is asked.
                foreach (var (host, guest) in forwards)
                    listeners.Add(LoopbackForward.Listen(host, token => api.PortForwardAsync(name, guest, token)));

                // Set before the request: a SIGTERM while it is in flight may leave a VMI the server
                // made, and deleting one that was never made is no error.
                created = true;
                uid = await api.CreateAsync(VmiManifest.Build(request), stop.Token);
                // Made while the VMI is still being scheduled: its guest has not booted yet.
                if (args.Flag("--network-policy"))
                {
                    try
                    {
                        for (var attempt = 1; ; attempt++)
                        {
                            try
                            {
                                await api.CreateNetworkPolicyAsync(VmiManifest.Isolation(name, uid), stop.Token);
                                break;
                            }
                            catch (BridgeException e) when (e.Transient && attempt < 5)
                            {
                                await Console.Error.WriteLineAsync(e.Message);
                                await Task.Delay(TimeSpan.FromSeconds(1), stop.Token);
                            }
                        }
                    }
                    catch (BridgeException e)
                    {
                        throw new BridgeException($"{e.Message} KubeVirtOptions.NetworkPolicy asks for a NetworkPolicy with each VMI: grant create on networkpolicies, or turn it off.");
                    }
                }
                await Console.Error.WriteLineAsync($"VMI {api.Namespace}/{name} created; waiting for it to run");
                await WaitUntilRunningAsync(api, name, TimeSpan.FromSeconds(args.Number("--schedule-timeout")), stop.Token);

                console = ConsoleCopy.RunAsync(api, name, uid, args.Required("--console-log"), stop.Token);
                // The core waits for this file: the VMI runs and its ports listen.
                await File.WriteAllTextAsync(args.Required("--pidfile"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
                await Console.Error.WriteLineAsync($"VMI {api.Namespace}/{name} is running");

                // The lease is renewed every third of it: two renewals may fail before it lapses.
                var renewEvery = lease / 3;
                var renewed = System.Diagnostics.Stopwatch.StartNew();
                while (true)
                {
                    await Task.Delay(renewEvery < StatusInterval ? renewEvery : StatusInterval, stop.Token);
                    VmiStatus? status;
                    try
                    {
                        status = await api.StatusAsync(name, stop.Token);
                    }
                    catch (BridgeException e)
                    {
                        // An API server that does not answer for a moment ends no VM.
                        await Console.Error.WriteLineAsync(e.Message);
                        continue;
                    }
                    if (status is null) throw new BridgeException($"VMI {api.Namespace}/{name} was deleted by someone else.");
                    if (status.HasEnded) throw new BridgeException($"VMI {api.Namespace}/{name} ended: {status.Phase}{(status.Reason is null ? "" : $" ({status.Reason})")}.");
                    if (renewed.Elapsed < renewEvery) continue;
                    try
                    {
                        await api.RenewAsync(name, request.OwnerToken, DateTimeOffset.UtcNow + lease, stop.Token);
                        renewed.Restart();
                    }
                    catch (BridgeException e) when (e.StatusCode == 422)
                    {
                        throw new BridgeException($"VMI {api.Namespace}/{name} no longer carries this bridge's owner token (another VMI took its name): {e.Message}");
                    }
                    catch (BridgeException e)
                    {
                        // Asked again at the next status: two more chances before the lease lapses.
                        await Console.Error.WriteLineAsync(e.Message);
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                await Console.Error.WriteLineAsync($"Stopping: deleting VMI {api.Namespace}/{name}");
                return 0;
            }
            finally
            {
                foreach (var listener in listeners) await listener.DisposeAsync();
                if (created)
                {
                    // A delete that fails is said, and never hides why the bridge ends (a create
                    // refused for bad credentials is refused again here); prune deletes what is left.
                    using var budget = new CancellationTokenSource(DeleteBudget);
                    try
                    {
                        await api.DeleteAsync(name, uid, budget.Token);
                    }
                    catch (Exception e) when (e is BridgeException or OperationCanceledException)
                    {
                        await Console.Error.WriteLineAsync($"Could not delete VMI {api.Namespace}/{name}: {e.Message}");
                    }
                }
                await stop.CancelAsync();
                if (console is not null) await console;
            }
        }

        public static async Task<int> DeleteAsync(BridgeArguments args)
        {
            using var api = KubeVirtApi.Connect(args);
            await api.DeleteAsync(args.Required("--name"), null, CancellationToken.None);
            return 0;
        }

        public static async Task<int> PruneAsync(BridgeArguments args)
        {
            using var api = KubeVirtApi.Connect(args);
            var host = VmiManifest.LabelValue(args.Required("--owner-host"));
            foreach (var vmi in await api.ListAsync(CancellationToken.None))
            {
                var name = vmi["metadata"]?["name"]?.GetValue<string>();
                if (name is null || !Orphans.IsOrphan(vmi, host, Orphans.Here, Orphans.Boot, DateTimeOffset.UtcNow, Orphans.StartTimeOfLiveProcess)) continue;
                // The uid judged, not whatever has the name by the time the delete arrives.
                if (!args.Flag("--dry-run")) await api.DeleteAsync(name, vmi["metadata"]?["uid"]?.GetValue<string>(), CancellationToken.None);
                Console.WriteLine(name);
            }
            return 0;
        }

        public static async Task<int> CheckAsync(BridgeArguments args)
        {
            using var api = KubeVirtApi.Connect(args);
            var vmis = await api.ListAsync(CancellationToken.None);
            Console.WriteLine($"namespace {api.Namespace}: {vmis.Count} VMIs of the SDK");
            return 0;
        }

        // A watch answers the moment the VMI changes: the boot's first SSH probe is not held up
        // by a poll interval, and a long schedule costs the API server one request a minute.
        private static readonly TimeSpan WatchTimeout = TimeSpan.FromSeconds(60);

        private static async Task WaitUntilRunningAsync(KubeVirtApi api, string name, TimeSpan limit, CancellationToken cancellationToken)
        {
            // The limit as a cancellation: monotonic, so a clock jump moves no deadline.
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(limit);
            VmiStatus? last = null;
            var watch = true;
            try
            {
                while (true)
                {
                    var seen = false;
                    try
                    {
                        if (!watch)
                        {
                            if (Verdict(api, name, last = await api.StatusAsync(name, deadline.Token))) return;
                            await Task.Delay(TimeSpan.FromMilliseconds(500), deadline.Token);
                            continue;
                        }
                        await foreach (var status in api.WatchAsync(name, WatchTimeout, deadline.Token))
                        {
                            seen = true;
                            last = status;
                            if (Verdict(api, name, status)) return;
                        }
                        // The server ended the watch; one that showed nothing may have missed a deletion.
                        if (!seen && Verdict(api, name, last = await api.StatusAsync(name, deadline.Token))) return;
                    }
                    catch (BridgeException e) when (e.StatusCode == 403 && watch)
                    {
                        // Credentials that may get but not watch: the VMI is read every half second instead.
                        await Console.Error.WriteLineAsync($"{e.Message} Reading the VMI every 0.5 s instead.");
                        watch = false;
                    }
                    catch (BridgeException e) when (e.Transient)
                    {
                        // An API server busy or away for a moment ends no boot: asked again until the limit.
                        await Console.Error.WriteLineAsync(e.Message);
                        await Task.Delay(TimeSpan.FromSeconds(1), deadline.Token);
                    }
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new BridgeException(
                    $"VMI {api.Namespace}/{name} was not running after {limit.TotalSeconds:0} s (phase {last?.Phase ?? "unknown"}{(last?.Reason is null ? "" : $": {last.Reason}")}{(last?.Unscheduled is { } unscheduled ? $"; not scheduled: {unscheduled}" : "")}). " +
                    "Check 'kubectl describe vmi' for scheduling and image pull events, or raise KubeVirtOptions.ScheduleTimeout.");
            }
        }

        // True when the VMI runs; throws when it never will; false while it may yet.
        private static bool Verdict(KubeVirtApi api, string name, VmiStatus? status)
        {
            if (status is null) throw new BridgeException($"VMI {api.Namespace}/{name} disappeared while it was starting.");
            if (status.IsRunning) return true;
            if (status.HasEnded) throw new BridgeException($"VMI {api.Namespace}/{name} did not start: {status.Phase}{(status.Reason is null ? "" : $" ({status.Reason})")}.");
            if (status.CannotStart is { } pull) throw new BridgeException($"VMI {api.Namespace}/{name} cannot start: its image cannot be pulled ({pull}).");
            return false;
        }

        private static ClusterDisk Disk(string reference)
        {
            try
            {
                return ClusterDisk.Parse(reference);
            }
            catch (LinuxKitException e)
            {
                throw new ArgumentException(e.Message, e);
            }
        }

        private static (int Host, int Guest) Forward(string value)
        {
            var parts = value.Split(':');
            if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var host) && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var guest))
                return (host, guest);
            throw new ArgumentException($"--forward takes HOST:GUEST, not '{value}'.");
        }
    }
}
