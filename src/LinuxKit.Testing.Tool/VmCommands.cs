using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace LinuxKit.Testing.Tool;

/// <summary>ps, logs, exec, ssh, stop, rm, prune and run: the VMs of the state directory.</summary>
internal static class VmCommands
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static IEnumerable<Command> All(ToolContext context) =>
        [Ps(context), Logs(context), Exec(context), Ssh(context), Stop(context), Remove(context), Prune(context), Run(context)];

    private static Argument<string> VmArgument() => new("vm") { Description = "The VM's id or name." };

    private static Command Ps(ToolContext context)
    {
        var all = new Option<bool>("--all", "-a") { Description = "Also stopped and failed VMs." };
        var json = new Option<bool>("--json") { Description = "One JSON array, every field of every VM." };
        var command = new Command("ps", "List the VMs (running and starting ones; --all for every one).") { all, json };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var vms = (await manager.ListAsync(token))
                .Where(vm => parsed.GetValue(all) || vm.Status.IsLive())
                .ToList();
            if (parsed.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(vms, Json));
                return ExitCodes.Ok;
            }
            var now = DateTimeOffset.UtcNow;
            Table.Write(Console.Out, ["ID", "NAME", "IMAGE", "STATUS", "PID", "PORTS", "OWNER", "AGE"], vms.Select(vm => (IReadOnlyList<string>)
            [
                vm.Id,
                vm.Name ?? "-",
                Path.GetFileName(vm.Image),
                vm.Error is not null ? "error (untrusted record)"
                    : vm.ForeignHost is { } where ? $"{vm.Status.ToString().ToLowerInvariant()} ({where}, as last recorded)"
                    : vm.Status.ToString().ToLowerInvariant(),
                vm.Pid > 0 && vm.Status.IsLive() ? vm.Pid.ToString(CultureInfo.InvariantCulture) : "-",
                string.Join(",", vm.Ports.Select(p => $"{p.Key}->{p.Value}").Prepend($"{vm.SshPort}->22").Where(_ => vm.SshPort > 0)),
                vm.OwnerPid is { } owner ? $"{owner} ({(vm.ForeignHost is not null ? "elsewhere" : vm.OwnerAlive ? "alive" : "gone")})" : vm.Detached ? "detached" : "-", // "-": a record from before owners were kept
                Table.Age(vm.StartedAt, now),
            ]));
            return ExitCodes.Ok;
        }, token));
        return command;
    }

    private static Command Logs(ToolContext context)
    {
        var vm = VmArgument();
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing what the VM writes until it stops (or Ctrl-C)." };
        var raw = new Option<bool>("--raw") { Description = "The console's bytes as the guest wrote them; by default its control characters (terminal escape sequences) are shown as \\xNN." };
        var command = new Command("logs", "Print a VM's serial console.") { vm, follow, raw };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var log = await manager.LogsAsync(parsed.GetValue(vm)!, parsed.GetValue(follow), token);
            await using (log)
            {
                using var stdout = Console.OpenStandardOutput();
                if (parsed.GetValue(raw)) await log.CopyToAsync(stdout, token);
                else await LinuxKit.Testing.Logs.TerminalText.CopyEscapedAsync(log, stdout, token);
            }
            return ExitCodes.Ok;
        }, token));
        return command;
    }

    private static Command Exec(ToolContext context)
    {
        var vm = VmArgument();
        var program = new Argument<string[]>("command") { Description = "The program and its arguments (after --).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("exec", "Run a command in a VM; its exit code becomes the tool's.") { vm, program };
        command.SetAction(async (parsed, token) =>
        {
            await using var manager = context.Manager(parsed);
            ExecResult result;
            try
            {
                result = await manager.ExecAsync(parsed.GetValue(vm)!, parsed.GetValue(program)!, token);
            }
            catch (LinuxKitException e)
            {
                Console.Error.WriteLine($"linuxkit-testing: {e.Message}");
                return ExitCodes.ExecFailed;
            }
            Console.Out.Write(result.Stdout);
            Console.Error.Write(result.Stderr);
            return result.ExitCode;
        });
        return command;
    }

    private static Command Ssh(ToolContext context)
    {
        var vm = VmArgument();
        var remote = new Argument<string[]>("command") { Description = "A command to run instead of a login shell (after --).", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("ssh", "Open an interactive shell in a VM with OpenSSH's client, its key and its pinned host key.") { vm, remote };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var target = await manager.InspectAsync(parsed.GetValue(vm)!, token);
            if (target.Status != ContainerStatus.Running)
                throw new LinuxKitException($"VM {target.Id} is {target.Status.ToString().ToLowerInvariant()}; only a running VM takes SSH connections.");
            // Only the key seen at boot is trusted: a known_hosts of one line, checked strictly.
            var info = new ProcessStartInfo("ssh") { UseShellExecute = false };
            foreach (var arg in OpenSshClient.Arguments(manager.StateDirectory, target)) info.ArgumentList.Add(arg);
            foreach (var arg in parsed.GetValue(remote) ?? []) info.ArgumentList.Add(arg);
            Process ssh;
            try
            {
                ssh = Process.Start(info)!;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new LinuxKitException($"OpenSSH's client 'ssh' cannot be started ({e.Message}); install it (Debian/Ubuntu: apt-get install openssh-client), or use 'linuxkit-testing exec'.");
            }
            using (ssh)
            {
                await ssh.WaitForExitAsync(CancellationToken.None);
                return ssh.ExitCode;
            }
        }, token));
        return command;
    }

    private static Command Stop(ToolContext context)
    {
        var vms = new Argument<string[]>("vm") { Description = "Ids or names of the VMs to stop.", Arity = ArgumentArity.ZeroOrMore };
        var all = new Option<bool>("--all", "-a") { Description = "Stop every running VM of the state directory." };
        var graceful = new Option<bool>("--graceful") { Description = "Ask the guest to power off first (ACPI), as StopMode.Graceful; without it a VM stops the way it was run to (run --graceful-stop, else at once)." };
        var command = new Command("stop", "Stop VMs.") { vms, all, graceful };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var targets = parsed.GetValue(vms) ?? [];
            if (parsed.GetValue(all))
            {
                targets = [.. (await manager.ListAsync(token)).Where(v => v.Status.IsLive()).Select(v => v.Id)];
            }
            else if (targets.Length == 0)
            {
                Console.Error.WriteLine("linuxkit-testing: name the VMs to stop, or give --all.");
                return ExitCodes.Usage;
            }
            foreach (var target in targets)
            {
                if (parsed.GetValue(graceful)) await manager.StopAsync(target, StopMode.Graceful, token);
                else await manager.StopAsync(target, token);
                Console.WriteLine(target);
            }
            return ExitCodes.Ok;
        }, token));
        return command;
    }

    private static Command Remove(ToolContext context)
    {
        var vms = new Argument<string[]>("vm") { Description = "Ids or names of stopped VMs.", Arity = ArgumentArity.OneOrMore };
        var force = new Option<bool>("--force", "-f") { Description = "Also forget VMs recorded on another machine or PID namespace (nothing is signalled; such a VM runs on there, untracked)." };
        var command = new Command("rm", "Remove stopped VMs and their folders (console logs included).") { vms, force };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            foreach (var target in parsed.GetValue(vms)!)
            {
                await manager.RemoveAsync(target, parsed.GetValue(force), token);
                Console.WriteLine(target);
            }
            return ExitCodes.Ok;
        }, token));
        return command;
    }

    private static Command Prune(ToolContext context)
    {
        var dryRun = new Option<bool>("--dry-run", "-n") { Description = "Only say what would be removed." };
        var command = new Command("prune", "Remove stopped and failed VMs, VMs whose owner died, stale warm-start templates and (with KubeVirt) orphaned or expired VMIs.") { dryRun };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            await using var manager = context.Manager(parsed);
            var pruned = await manager.PruneAsync(parsed.GetValue(dryRun), token);
            var verb = parsed.GetValue(dryRun) ? "would remove" : "removed";
            foreach (var vm in pruned.Vms) Console.WriteLine($"{verb} VM {vm.Id} ({vm.Status.ToString().ToLowerInvariant()}{(vm.OwnerPid is not null && !vm.OwnerAlive ? ", owner gone" : "")})");
            foreach (var key in pruned.Templates) Console.WriteLine($"{verb} template {key}");
            foreach (var vmi in pruned.VirtualMachineInstances) Console.WriteLine($"{(parsed.GetValue(dryRun) ? "would delete" : "deleted")} KubeVirt VMI {vmi}");
            if (pruned.Vms.Count == 0 && pruned.Templates.Count == 0 && pruned.VirtualMachineInstances.Count == 0) Console.WriteLine("nothing to remove");
            return ExitCodes.Ok;
        }, token));
        return command;
    }

    private static Command Run(ToolContext context)
    {
        var image = new Argument<string>("image") { Description = "A LinuxKit image: .iso, .qcow2, .vmdk, raw .img, or a kernel+initrd prefix." };
        var detach = new Option<bool>("--detach", "-d") { Description = "Leave the VM running and exit; stop it later with 'linuxkit-testing stop'." };
        var ports = new Option<string[]>("--publish", "-p") { Description = "Forward a host port to a guest port, HOST:GUEST (HOST 0 picks a free one); repeatable.", AllowMultipleArgumentsPerToken = false };
        var defaults = new RunOptions();
        var memory = new Option<int>("--memory", "-m") { Description = "Memory in MB.", DefaultValueFactory = _ => defaults.Memory };
        var cpus = new Option<int>("--cpus") { Description = "Virtual CPUs.", DefaultValueFactory = _ => defaults.Cpus };
        var name = new Option<string?>("--name") { Description = "A name, usable wherever an id is." };
        var cold = new Option<bool>("--cold") { Description = "Boot cold instead of restoring from a warm-start template." };
        var unique = new Option<bool>("--unique-clones") { Description = "Boot cold rather than use a warm-start clone whose clock and random state cannot be renewed." };
        var direct = new Option<bool?>("--direct-kernel-boot") { Description = "true (or no value): always load an ISO's or BIOS disk's kernel, initrd and command line (from its ISOLINUX/SYSLINUX configuration) directly, skipping firmware and boot loader; false: never. Not given: where the boot loader would do nothing more." };
        var volumes = new Option<string[]>("--volume") { Description = "Share a host folder with the guest, HOST_FOLDER:GUEST_PATH (9p; the VM boots cold); repeatable.", AllowMultipleArgumentsPerToken = false };
        var sshKey = new Option<string?>("--ssh-key") { Description = "A private key the image accepts (one with its key baked in needs it); default: a fresh key for the VM." };
        var sshUser = new Option<string>("--ssh-user") { Description = "The user to log in as.", DefaultValueFactory = _ => defaults.SshUser };
        var bootTimeout = new Option<int>("--boot-timeout") { Description = "Seconds the VM may take to answer over SSH.", DefaultValueFactory = _ => (int)defaults.BootTimeout.TotalSeconds };
        var graceful = new Option<bool>("--graceful-stop") { Description = "Stop the VM with an ACPI power-off request, waiting for the guest, instead of at once." };
        var restrict = new Option<bool>("--restrict-network") { Description = "The guest reaches nothing outside it (the host's loopback services included); forwarded ports still reach it." };
        var firmware = new Option<string?>("--firmware") { Description = "bios or uefi; default: read from the image (an ISO's boot catalog, a disk's partition table)." };
        var arch = new Option<string?>("--arch") { Description = "x64 or arm64; default: read from the image. Another architecture than the host's runs under emulation." };
        var command = new Command("run", "Boot a VM and print how to connect; without --detach it runs until Ctrl-C, then stops.")
        {
            image, detach, ports, memory, cpus, name, cold, unique, direct, volumes, sshKey, sshUser, bootTimeout, graceful, restrict, firmware, arch,
        };
        command.SetAction((parsed, token) => ToolContext.GuardAsync(async () =>
        {
            var options = new FlatRunOptions
            {
                Source = "run",
                PortsSpelling = "--publish",
                VolumesSpelling = "--volume",
                Name = parsed.GetValue(name),
                Detach = parsed.GetValue(detach),
                Memory = parsed.GetValue(memory),
                Cpus = parsed.GetValue(cpus),
                Ports = parsed.GetValue(ports) ?? [],
                WarmStart = !parsed.GetValue(cold),
                UniqueClones = parsed.GetValue(unique),
                DirectKernelBoot = parsed.GetValue(direct),
                Volumes = parsed.GetValue(volumes) ?? [],
                SshKey = parsed.GetValue(sshKey),
                SshUser = parsed.GetValue(sshUser)!,
                BootTimeoutSeconds = parsed.GetValue(bootTimeout),
                GracefulStop = parsed.GetValue(graceful),
                RestrictNetwork = parsed.GetValue(restrict),
                Firmware = parsed.GetValue(firmware),
                Architecture = parsed.GetValue(arch),
            }.ApplyTo(new RunOptions(), Path.GetFullPath);
            using var progress = context.Progress(parsed);
            await using var manager = context.Manager(parsed, progress);
            var vm = await manager.RunAsync(parsed.GetValue(image)!, options, token);
            progress.Dispose();
            // The id alone on stdout, for scripts: VM=$(linuxkit-testing run -d IMAGE)
            Console.WriteLine(vm.Id);
            Console.Error.WriteLine($"VM {vm.Id} is running{(vm.WarmStartTemplate is { } t ? $" (restored from warm-start template {t})" : "")}. Connect with:");
            Console.Error.WriteLine($"  linuxkit-testing exec {vm.Id} -- uname -a");
            Console.Error.WriteLine($"  linuxkit-testing ssh {vm.Id}");
            // The plain client with the host key pinned, as `ssh` above runs it.
            Console.Error.WriteLine($"  {OpenSshClient.CommandLine(OpenSshClient.Arguments(manager.StateDirectory, vm))}");
            foreach (var (host, guest) in vm.Ports) Console.Error.WriteLine($"  guest port {guest}: 127.0.0.1:{host}");
            if (options.Detach)
            {
                Console.Error.WriteLine($"Stop it with: linuxkit-testing stop {vm.Id}");
                return ExitCodes.Ok;
            }
            Console.Error.WriteLine("Press Ctrl-C to stop it.");
            try
            {
                await Task.Delay(Timeout.Infinite, token);
            }
            catch (OperationCanceledException)
            {
                // Ctrl-C: disposing the manager stops the VM.
            }
            await manager.StopAsync(vm.Id, CancellationToken.None);
            return ExitCodes.Interrupted;
        }, token));
        return command;
    }
}
