using System.Diagnostics;
using System.Text.Json;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>The packed linuxkit-testing tool, installed from a local feed and run as a process against real VMs.</summary>
[Trait("Category", "Integration")]
public class ToolTests(InstalledTool tool, KubeVirt.KubeVirtClusterFixture cluster) : IClassFixture<InstalledTool>, IClassFixture<KubeVirt.KubeVirtClusterFixture>
{
    [Fact]
    public async Task A_detached_vm_is_run_listed_used_logged_reached_over_ssh_stopped_and_pruned()
    {
        await using var state = new ScratchState();
        var run = await tool.RunAsync(state.Path, "run", "--detach", "--memory", "256", "-p", "0:80", "--name", "web", TestEnvironment.Image("kernel"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        var id = run.Stdout.Trim();
        Assert.Matches("^[0-9a-f]{8}$", id);
        Assert.Contains($"linuxkit-testing ssh {id}", run.Stderr, StringComparison.Ordinal);

        var ps = await tool.RunAsync(state.Path, "ps");
        var row = Assert.Single(ps.Stdout.Split('\n'), l => l.StartsWith(id, StringComparison.Ordinal));
        Assert.Contains("web", row, StringComparison.Ordinal);
        Assert.Contains("running", row, StringComparison.Ordinal);
        Assert.Contains("detached", row, StringComparison.Ordinal);
        Assert.Contains("->80", row, StringComparison.Ordinal);
        using (var json = JsonDocument.Parse((await tool.RunAsync(state.Path, "ps", "--json")).Stdout))
            Assert.Equal(id, Assert.Single(json.RootElement.EnumerateArray()).GetProperty("id").GetString());

        var echo = await tool.RunAsync(state.Path, "exec", "web", "--", "echo", "a b; c");
        Assert.Equal((0, "a b; c\n"), (echo.ExitCode, echo.Stdout));
        Assert.Equal(7, (await tool.RunAsync(state.Path, "exec", id, "--", "sh", "-c", "exit 7")).ExitCode);
        Assert.Contains("Welcome to LinuxKit", (await tool.RunAsync(state.Path, "logs", id)).Stdout, StringComparison.Ordinal);
        // What the guest writes to its console reaches a terminal escaped, unless asked raw.
        Assert.Equal(0, (await tool.RunAsync(state.Path, "exec", id, "--", "sh", "-c", "printf '\\033]0;owned\\007\\n' > /dev/console")).ExitCode);
        await TestEnvironment.AssertEventuallyAsync(async () => (await tool.RunAsync(state.Path, "logs", id)).Stdout.Contains("\\x1b]0;owned\\x07", StringComparison.Ordinal), "the console line escaped");
        Assert.Contains("\u001b]0;owned\u0007", (await tool.RunAsync(state.Path, "logs", "--raw", id)).Stdout, StringComparison.Ordinal);

        // OpenSSH's own client, with the VM's key and the host key pinned at boot, in a
        // known_hosts of the VM's own (0600; a link planted there is replaced, not followed).
        var knownHosts = Path.Combine(state.Path, "vms", id, "known_hosts");
        var elsewhere = Path.Combine(state.Path, "elsewhere");
        await File.WriteAllTextAsync(elsewhere, "untouched");
        File.Delete(knownHosts);
        File.CreateSymbolicLink(knownHosts, elsewhere);
        var ssh = await tool.RunAsync(state.Path, "ssh", id, "--", "hostname");
        Assert.True(ssh.ExitCode == 0, ssh.Stderr);
        Assert.Equal("linuxkit\n", ssh.Stdout);
        Assert.Equal("untouched", await File.ReadAllTextAsync(elsewhere));
        Assert.Null(new FileInfo(knownHosts).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(knownHosts));
        // The plain ssh line `run` printed is pinned the same way and runs as printed.
        var printed = run.Stderr.Split('\n').Select(l => l.Trim()).Single(l => l.StartsWith("ssh ", StringComparison.Ordinal));
        Assert.Contains("GlobalKnownHostsFile=/dev/null", printed, StringComparison.Ordinal);
        Assert.Contains(" -- ", printed, StringComparison.Ordinal);
        using (var shell = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", printed + " hostname"]) { RedirectStandardOutput = true, RedirectStandardError = true })!)
        {
            var output = await shell.StandardOutput.ReadToEndAsync();
            await shell.WaitForExitAsync();
            Assert.True(shell.ExitCode == 0, await shell.StandardError.ReadToEndAsync());
            Assert.Equal("linuxkit\n", output);
        }

        Assert.Equal(0, (await tool.RunAsync(state.Path, "stop", id)).ExitCode);
        Assert.DoesNotContain(id, (await tool.RunAsync(state.Path, "ps")).Stdout, StringComparison.Ordinal);
        Assert.Contains("stopped", (await tool.RunAsync(state.Path, "ps", "--all")).Stdout, StringComparison.Ordinal);
        Assert.Equal(ExitCodeExecFailed, (await tool.RunAsync(state.Path, "exec", id, "--", "true")).ExitCode);

        var dryRun = await tool.RunAsync(state.Path, "prune", "--dry-run");
        Assert.Contains($"would remove VM {id} (stopped)", dryRun.Stdout, StringComparison.Ordinal);
        Assert.Contains(id, (await tool.RunAsync(state.Path, "ps", "--all")).Stdout, StringComparison.Ordinal);
        Assert.Contains($"removed VM {id}", (await tool.RunAsync(state.Path, "prune")).Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(id, (await tool.RunAsync(state.Path, "ps", "--all")).Stdout, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(state.Path, "vms", id)));
    }

    private const int ExitCodeExecFailed = 125;

    [Fact]
    public async Task Run_reaches_the_options_a_vm_has_key_user_boot_timeout_graceful_stop_network_and_hypervisor()
    {
        await using var state = new ScratchState();
        // The image with its key baked in: only that key logs in.
        var run = await tool.RunAsync(
            state.Path, "--hypervisor", "qemu", "run", "-d", "-m", "256", "--ssh-key", TestEnvironment.BakedKey, "--ssh-user", "root",
            "--boot-timeout", "90", "--graceful-stop", "--restrict-network", TestEnvironment.ShapedImage("dropbear", "baked"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        var id = run.Stdout.Trim();

        Assert.Equal((0, "root\n"), await ExecAsync(state.Path, id, "whoami"));
        int pid;
        using (var json = JsonDocument.Parse((await tool.RunAsync(state.Path, "ps", "--json")).Stdout))
            pid = Assert.Single(json.RootElement.EnumerateArray()).GetProperty("pid").GetInt32();
        Assert.Contains("restrict=on", await File.ReadAllTextAsync($"/proc/{pid}/cmdline"), StringComparison.Ordinal);
        Assert.Equal(0, (await tool.RunAsync(state.Path, "stop", id)).ExitCode);
        // A graceful stop: the guest powered itself off (exit code 0, where a fast stop gives 137).
        using (var json = JsonDocument.Parse((await tool.RunAsync(state.Path, "ps", "--all", "--json")).Stdout))
            Assert.Equal(0, Assert.Single(json.RootElement.EnumerateArray()).GetProperty("exitCode").GetInt32());
    }

    [Fact]
    public async Task Run_shares_a_host_folder_given_with_volume_and_refuses_one_not_written_host_colon_guest()
    {
        await using var state = new ScratchState();
        using var shared = new TempDirectory("lkt-tool-volume-");
        await File.WriteAllTextAsync(Path.Combine(shared.Path, "from-host.txt"), "hello");

        var bad = await tool.RunAsync(state.Path, "run", "-d", "--volume", shared.Path, TestEnvironment.Image("9p"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--volume has", bad.Stderr, StringComparison.Ordinal);

        var run = await tool.RunAsync(state.Path, "run", "-d", "-m", "256", "--volume", $"{shared.Path}:/mnt/shared", TestEnvironment.Image("9p"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal((0, "hello"), await ExecAsync(state.Path, run.Stdout.Trim(), "cat", "/mnt/shared/from-host.txt"));
        await tool.RunAsync(state.Path, "stop", "--all");
    }

    private async Task<(int ExitCode, string Stdout)> ExecAsync(string statePath, string id, params string[] command)
    {
        var result = await tool.RunAsync(statePath, ["exec", id, "--", .. command]);
        return (result.ExitCode, result.Stdout);
    }

    [Fact]
    public async Task On_a_terminal_run_shows_a_spinner_line_and_redirected_plain_lines()
    {
        await using var state = new ScratchState();
        // script(1) gives the tool a pseudo-terminal, as a developer's shell would.
        var (exitCode, onTerminal) = await RunUnderTerminalAsync(state.Path, "run", "-d", "-m", "256", TestEnvironment.Image("kernel"));
        Assert.True(exitCode == 0, onTerminal);
        Assert.Matches(@"\r[|/\\-] +[0-9.]+ s  ", onTerminal); // one line, redrawn in place
        var redirected = await tool.RunAsync(state.Path, "run", "-d", "-m", "256", TestEnvironment.Image("kernel"));
        Assert.DoesNotContain("\r", redirected.Stderr, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^\[ *[0-9.]+ s\] Booting VM", redirected.Stderr);
        await tool.RunAsync(state.Path, "stop", "--all");
    }

    [Fact]
    public async Task Doctor_on_kubevirt_checks_the_cluster_instead_of_qemu_and_names_a_refusal()
    {
        await using var state = new ScratchState();
        var doctor = await tool.RunAsync(state.Path, new Dictionary<string, string> { ["LINUXKIT_TESTING_HYPERVISOR"] = "kubevirt", ["LINUXKIT_TESTING_KUBECONFIG"] = cluster.Kubeconfig }, "doctor");
        Assert.True(doctor.ExitCode == 0, doctor.Stdout + doctor.Stderr);
        Assert.Contains($"KubeVirt: {cluster.Kubeconfig}", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains("VMIs of the SDK", doctor.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("QEMU", doctor.Stdout, StringComparison.Ordinal);

        var wrong = Path.Combine(state.Path, "wrong-kubeconfig");
        await File.WriteAllTextAsync(wrong, cluster.Fake.StaticKubeconfig("not-the-token"));
        var refused = await tool.RunAsync(state.Path, new Dictionary<string, string> { ["LINUXKIT_TESTING_HYPERVISOR"] = "kubevirt", ["LINUXKIT_TESTING_KUBECONFIG"] = wrong }, "doctor");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("FIX  KubeVirt:", refused.Stdout, StringComparison.Ordinal);
        Assert.Contains("401", refused.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prune_finds_a_kubevirt_vmi_whose_bridge_was_killed_by_its_labels_and_deletes_it()
    {
        await using var state = new ScratchState();
        var kubeVirt = new Dictionary<string, string> { ["LINUXKIT_TESTING_HYPERVISOR"] = "kubevirt", ["LINUXKIT_TESTING_KUBECONFIG"] = cluster.Kubeconfig };
        var (ran, id, ranErrors) = await tool.RunAsync(state.Path, kubeVirt, "run", "-d", "-m", "256", KubeVirt.KubeVirtClusterFixture.ContainerDisk("dropbear"));
        Assert.True(ran == 0, ranErrors);
        var (_, json, _) = await tool.RunAsync(state.Path, kubeVirt, "ps", "--json");
        var pid = System.Text.Json.JsonDocument.Parse(json).RootElement.EnumerateArray().Single().GetProperty("pid").GetInt32();

        Process.GetProcessById(pid).Kill(); // the bridge: its VMI stays behind
        await TestEnvironment.AssertNoneLeftAsync("bridge", () => TestEnvironment.IsRunning(pid) ? [pid] : [], TimeSpan.FromSeconds(10));
        Assert.Single(await cluster.VmisAsync());

        var (pruned, output, errors) = await tool.RunAsync(state.Path, kubeVirt, "prune");

        Assert.True(pruned == 0, errors);
        Assert.Contains($"deleted KubeVirt VMI linuxkit-testing-{id.Trim()}", output, StringComparison.Ordinal);
        Assert.Empty(await cluster.VmisAsync());
    }

    private async Task<(int ExitCode, string Output)> RunUnderTerminalAsync(string stateDirectory, params string[] args)
    {
        var command = string.Join(' ', args.Prepend(tool.CommandPath).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var info = new ProcessStartInfo("script") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-q", "-e", "-c", command, "/dev/null" }) info.ArgumentList.Add(arg);
        info.Environment["LINUXKIT_TESTING_HOME"] = stateDirectory;
        info.Environment["TERM"] = "xterm";
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await output);
    }

    [Fact]
    public async Task Templates_are_listed_with_their_size_and_removed()
    {
        await using var state = new ScratchState();
        var run = await tool.RunAsync(state.Path, "run", "-d", "-m", "256", TestEnvironment.Image("kernel"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        await tool.RunAsync(state.Path, "stop", "--all");

        var listed = (await tool.RunAsync(state.Path, "templates")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var key = Assert.Single(listed.Skip(1)).Split(' ')[0];
        Assert.Contains(" MB", listed[1], StringComparison.Ordinal);
        Assert.Equal(0, (await tool.RunAsync(state.Path, "templates", "rm", key)).ExitCode);
        Assert.Single((await tool.RunAsync(state.Path, "templates")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)); // the header
    }

    [Fact]
    public async Task A_key_on_which_warm_start_failed_is_listed_as_failed_with_why_until_it_is_removed()
    {
        await using var state = new ScratchState();
        await using (var manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = state.Path }))
        {
            // As "user" a clone cannot be renewed; with UniqueClones that fails warm start.
            var vm = await manager.RunAsync(TestEnvironment.ShapedImage("dropbear", "user"), ScratchManager.Small with { SshUser = "user", UniqueClones = true });
            Assert.Null(vm.WarmStartTemplate);
            Assert.Contains("UniqueClones", Assert.Single(await manager.ListTemplatesAsync()).FailureReason, StringComparison.Ordinal);
        }

        var listed = (await tool.RunAsync(state.Path, "templates")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(3, listed.Length); // the header, the key's row, why it failed
        var key = listed[1].Split(' ')[0];
        Assert.Contains(" failed ", listed[1], StringComparison.Ordinal);
        Assert.StartsWith($"{key} failed: ", listed[2], StringComparison.Ordinal);
        Assert.Contains("UniqueClones", listed[2], StringComparison.Ordinal);
        Assert.Equal(0, (await tool.RunAsync(state.Path, "templates", "rm", key)).ExitCode);
        Assert.Single((await tool.RunAsync(state.Path, "templates")).Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Run_without_detach_stops_the_vm_on_ctrl_c_and_exits_130()
    {
        await using var state = new ScratchState();
        using var process = tool.Start(state.Path, "run", "-m", "256", TestEnvironment.Image("kernel"));
        var id = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Matches("^[0-9a-f]{8}$", id);
        Assert.Contains("running", (await tool.RunAsync(state.Path, "ps")).Stdout, StringComparison.Ordinal);

        using (var interrupt = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await interrupt.WaitForExitAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(130, process.ExitCode);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task Doctor_names_qemu_its_version_qboot_the_accelerator_and_the_state_directory()
    {
        await using var state = new ScratchState();
        var doctor = await tool.RunAsync(state.Path, "doctor");
        Assert.True(doctor.ExitCode == 0, doctor.Stdout + doctor.Stderr);
        Assert.Contains("QEMU emulator version", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains("qemu-img version", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains("Accelerator: ", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains("ok   qboot: /usr/share/qemu/qboot.rom (cold x86_64 boots of a kernel loaded directly: kernel+initrd, ISOs and BIOS disks)", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains($"State directory: {state.Path} (mode 700", doctor.Stdout, StringComparison.Ordinal);

        // --state-dir wins over the environment variable; a state directory others can write to
        // is a failure to fix.
        await using var other = new ScratchState();
        File.SetUnixFileMode(state.Path, (UnixFileMode)0x1FF); // 0777
        var refused = await tool.RunAsync(other.Path, "doctor", "--state-dir", state.Path);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains($"FIX  State directory: State directory '{state.Path}' is refused", refused.Stdout, StringComparison.Ordinal);
        File.SetUnixFileMode(state.Path, (UnixFileMode)0x1C0); // 0700
    }

    [Fact]
    public void The_tool_package_names_its_command_and_carries_its_readme_license_and_symbols()
    {
        var package = Assert.Single(Directory.GetFiles(tool.Feed, "LinuxKit.Testing.Tool.*.nupkg"));
        Assert.True(File.Exists(Path.ChangeExtension(package, ".snupkg")));
        using var zip = System.IO.Compression.ZipFile.OpenRead(package);
        Assert.NotNull(zip.GetEntry("README.md"));
        using (var settings = new StreamReader(zip.GetEntry("tools/net8.0/any/DotnetToolSettings.xml")!.Open()))
            Assert.Contains("<Command Name=\"linuxkit-testing\"", settings.ReadToEnd(), StringComparison.Ordinal);
        using var nuspec = new StreamReader(zip.GetEntry("LinuxKit.Testing.Tool.nuspec")!.Open());
        Assert.Contains("<license type=\"expression\">MIT</license>", nuspec.ReadToEnd(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("bogus")]
    [InlineData("exec")]
    [InlineData("stop")]
    public async Task A_wrong_command_line_exits_2_and_says_where_help_is(string command)
    {
        await using var state = new ScratchState();
        var result = await tool.RunAsync(state.Path, command);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("linuxkit-testing", result.Stderr, StringComparison.Ordinal);
    }
}

/// <summary>The tool from the run's local package feed, installed into a folder of its own as `dotnet tool install` does.</summary>
public sealed class InstalledTool : IAsyncLifetime, IDisposable
{
    private readonly LocalPackageFeed _feed = new();
    private readonly TempDirectory _tools = new("lkt-tool-");

    /// <summary>The installed command.</summary>
    public string CommandPath => Path.Combine(_tools.Path, "linuxkit-testing");

    /// <summary>The local feed the tool was packed into.</summary>
    public string Feed => _feed.Path;

    public async Task InitializeAsync()
    {
        await _feed.InitializeAsync();
        var (installed, installOutput) = await TestEnvironment.RunDotnetAsync(
            ["tool", "install", "LinuxKit.Testing.Tool", "--tool-path", _tools.Path, "--add-source", _feed.Path, "--version", _feed.Version],
            new Dictionary<string, string?>(), TimeSpan.FromMinutes(3));
        if (installed != 0) throw new InvalidOperationException($"dotnet tool install failed: {installOutput}");
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _tools.Dispose();

    /// <summary>Starts the tool with LINUXKIT_TESTING_HOME set to <paramref name="stateDirectory"/>.</summary>
    public Process Start(string stateDirectory, params string[] args) => Start(stateDirectory, new Dictionary<string, string>(), args);

    /// <summary>As <see cref="Start(string, string[])"/>, with more environment variables.</summary>
    public Process Start(string stateDirectory, Dictionary<string, string> environment, params string[] args)
    {
        // With Ctrl-C's default action, as from a terminal: a test run started in the background
        // of a shell ignores SIGINT, and a process inherits that, the tool too.
        var info = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        info.ArgumentList.Add("--default-signal=INT");
        info.ArgumentList.Add(CommandPath);
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["LINUXKIT_TESTING_HOME"] = stateDirectory;
        foreach (var (name, value) in environment) info.Environment[name] = value;
        return Process.Start(info)!;
    }

    /// <summary>Runs the tool to its end.</summary>
    public Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string stateDirectory, params string[] args) =>
        RunAsync(stateDirectory, new Dictionary<string, string>(), args);

    /// <summary>As <see cref="RunAsync(string, string[])"/>, with more environment variables.</summary>
    public async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string stateDirectory, Dictionary<string, string> environment, params string[] args)
    {
        using var process = Start(stateDirectory, environment, args);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await stdout, await stderr);
    }
}
