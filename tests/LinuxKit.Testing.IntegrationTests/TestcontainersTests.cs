using System.Diagnostics;
using System.Net.Http;
using System.Text;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using LinuxKit.Testing.Testcontainers;

namespace LinuxKit.Testing.IntegrationTests;

/// <summary>
/// One VM started through every listed Testcontainers wait strategy, shared by the tests that
/// only look at it; one per SSH server (the subclasses). The image's web server starts two
/// seconds after SSH answers, so the port and HTTP strategies really wait.
/// </summary>
public abstract class WaitedForVm(string guest) : IAsyncLifetime
{
    public string Image { get; } = TestEnvironment.GuestImage(guest);

    public string State { get; } = Directory.CreateTempSubdirectory("lkt-tc-").FullName;

    public MemoryStream Console { get; } = new();

    public LinuxKitContainer Container { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Container = new LinuxKitBuilder()
            .WithImage(Image)
            .WithName("waited-for")
            .WithMemory(256)
            .WithPortBinding(80, assignRandomHostPort: true)
            .WithStateDirectory(State)
            .WithOutputConsumer(Consume.RedirectStdoutAndStderrToStream(Console, Stream.Null))
            .WithWaitStrategy(Wait.ForUnixContainer()
                .UntilMessageIsLogged("Welcome to LinuxKit")
                .UntilCommandIsCompleted("test -d /run/config")
                .UntilFileExists("/www/index.html", FileSystem.Container)
                .UntilInternalTcpPortIsAvailable(80)
                .UntilExternalTcpPortIsAvailable(80)
                .UntilHttpRequestIsSucceeded(request => request.ForPort(80).ForPath("/index.html")))
            .Build();
        await Container.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Container.DisposeAsync();
        await TestEnvironment.AssertNoQemuLeftAsync(State);
        Directory.Delete(State, recursive: true);
    }
}

public sealed class WaitedForDropbearVm() : WaitedForVm("dropbear");

public sealed class WaitedForOpenSshVm() : WaitedForVm("openssh");

[Trait("Category", "Integration")]
public sealed class TestcontainersWaitedForDropbearVmTests(WaitedForDropbearVm vm) : TestcontainersWaitedForVmTests<WaitedForDropbearVm>(vm);

[Trait("Category", "Integration")]
public sealed class TestcontainersWaitedForOpenSshVmTests(WaitedForOpenSshVm vm) : TestcontainersWaitedForVmTests<WaitedForOpenSshVm>(vm);

/// <summary>The tests on a waited-for VM, run once per SSH server by the subclasses above.</summary>
public abstract class TestcontainersWaitedForVmTests<TVm>(TVm vm) : IClassFixture<TVm>
    where TVm : WaitedForVm
{
    private LinuxKitContainer Container => vm.Container;

    [Fact]
    public async Task After_every_listed_wait_strategy_the_guest_web_server_answers_on_the_random_host_port()
    {
        Assert.Equal(TestcontainersStates.Running, Container.State);
        Assert.Equal(TestcontainersHealthStatus.None, Container.Health);
        var port = Container.GetMappedPublicPort(80);
        Assert.NotEqual(80, port);

        using var http = new HttpClient();
        var page = await http.GetStringAsync(new Uri($"http://{Container.Hostname}:{port}/index.html"));

        Assert.Contains("Hello from LinuxKit", page, StringComparison.Ordinal);
        var (logs, _) = await Container.GetLogsAsync(timestampsEnabled: false);
        Assert.Contains("httpd serving on port 80", logs, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_returns_stdout_stderr_and_the_exit_code()
    {
        var result = await Container.ExecAsync(["sh", "-c", "echo out; echo err >&2; exit 3"]);

        Assert.Equal("out\n", result.Stdout);
        Assert.Equal("err\n", result.Stderr);
        Assert.Equal(3, result.ExitCode);
    }

    [Fact]
    public async Task Bytes_copied_in_are_read_back_unchanged_with_the_mode_and_owner_asked_for()
    {
        var content = Enumerable.Range(0, 256 * 64).Select(i => (byte)i).ToArray();

        await Container.CopyAsync(content, "/tmp/copied/new/blob.bin", uid: 1000, gid: 100, UnixFileModes.UserRead | UnixFileModes.UserWrite | UnixFileModes.GroupRead);

        Assert.Equal(content, await Container.ReadFileAsync("/tmp/copied/new/blob.bin"));
        var stat = await Container.ExecAsync(["stat", "-c", "%a %u %g", "/tmp/copied/new/blob.bin"]);
        Assert.Equal("640 1000 100\n", stat.Stdout);
    }

    [Fact]
    public async Task Files_and_folders_are_copied_into_the_target_folder_by_name()
    {
        using var source = new TempDirectory("lkt-copy-");
        Directory.CreateDirectory(Path.Combine(source.Path, "conf", "empty"));
        await File.WriteAllTextAsync(Path.Combine(source.Path, "top.txt"), "top");
        await File.WriteAllTextAsync(Path.Combine(source.Path, "conf", "app.ini"), "[app]\n");
        var single = Path.Combine(source.Path, "conf", "app.ini");

        await Container.CopyAsync(new DirectoryInfo(source.Path), "/srv/site");
        await Container.CopyAsync(new FileInfo(single), "/srv/single");
        await Container.CopyAsync(Path.Combine(source.Path, "top.txt"), "/srv/by-path", fileMode: UnixFileModes.UserRead | UnixFileModes.UserExecute);

        Assert.Equal("top", Encoding.UTF8.GetString(await Container.ReadFileAsync("/srv/site/top.txt")));
        Assert.Equal("[app]\n", Encoding.UTF8.GetString(await Container.ReadFileAsync("/srv/site/conf/app.ini")));
        Assert.Equal(0, (await Container.ExecAsync(["test", "-d", "/srv/site/conf/empty"])).ExitCode);
        Assert.Equal("[app]\n", Encoding.UTF8.GetString(await Container.ReadFileAsync("/srv/single/app.ini")));
        Assert.Equal("500\n", (await Container.ExecAsync(["stat", "-c", "%a", "/srv/by-path/top.txt"])).Stdout);
    }

    [Fact]
    public async Task Reading_a_missing_file_throws_file_not_found_and_a_folder_says_so()
    {
        await Assert.ThrowsAsync<FileNotFoundException>(() => Container.ReadFileAsync("/no/such/file"));
        var e = await Assert.ThrowsAsync<LinuxKitException>(() => Container.ReadFileAsync("/etc"));
        Assert.Contains("is a folder", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Logs_honour_since_and_until_and_carry_docker_style_timestamps()
    {
        var before = DateTime.UtcNow;
        await Task.Delay(300);
        var marker = $"marker-{Guid.NewGuid():N}";
        await Container.ExecAsync(["sh", "-c", $"echo {marker} > /dev/console"]);
        // The guest's serial port drains after the command returns; on a busy host that can
        // take longer than any fixed pause.
        var (all, stderr) = await Container.GetLogsAsync(timestampsEnabled: false);
        for (var deadline = DateTime.UtcNow.AddSeconds(30); !all.Contains(marker, StringComparison.Ordinal) && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(100);
            (all, stderr) = await Container.GetLogsAsync(timestampsEnabled: false);
        }
        var (sinceBefore, _) = await Container.GetLogsAsync(since: before, timestampsEnabled: false);
        var (untilBefore, _) = await Container.GetLogsAsync(until: before, timestampsEnabled: false);
        var (stamped, _) = await Container.GetLogsAsync(since: before);

        Assert.Contains("Welcome to LinuxKit", all, StringComparison.Ordinal);
        Assert.Contains(marker, all, StringComparison.Ordinal);
        Assert.Equal("", stderr);
        Assert.Contains(marker, sinceBefore, StringComparison.Ordinal);
        Assert.DoesNotContain("Welcome to LinuxKit", sinceBefore, StringComparison.Ordinal);
        Assert.Contains("Welcome to LinuxKit", untilBefore, StringComparison.Ordinal);
        Assert.DoesNotContain(marker, untilBefore, StringComparison.Ordinal);
        var line = stamped.Split('\n').Single(l => l.EndsWith(marker, StringComparison.Ordinal));
        var time = DateTime.Parse(line.Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AdjustToUniversal);
        Assert.InRange(time, before, DateTime.UtcNow);
    }

    [Fact]
    public async Task The_output_consumer_received_the_console_from_its_first_line()
    {
        var consumed = Encoding.UTF8.GetString(vm.Console.ToArray()).Replace("\r", "", StringComparison.Ordinal);
        var (logs, _) = await Container.GetLogsAsync(timestampsEnabled: false);

        Assert.Equal(logs.Split('\n')[0], consumed.Split('\n')[0]);
        Assert.Contains("Welcome to LinuxKit", consumed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ports_addresses_names_and_times_describe_the_vm()
    {
        var ports = Container.GetMappedPublicPorts();
        Assert.Equal(Container.GetMappedPublicPort(80), ports[80]);
        Assert.Equal(Container.GetMappedPublicPort("80/tcp"), ports[80]);
        Assert.Equal(Container.GetMappedPublicPort(), ports[80]);
        Assert.Equal($"ssh://root@127.0.0.1:{ports[22]}", Container.GetConnectionString());
        Assert.Contains("WithPortBinding(5432", Assert.Throws<InvalidOperationException>(() => Container.GetMappedPublicPort(5432)).Message, StringComparison.Ordinal);

        Assert.Equal("127.0.0.1", Container.Hostname);
        Assert.Equal("10.0.2.15", Container.IpAddress);       // QEMU's user network gives the guest this address
        Assert.Equal("52:54:00:12:34:56", Container.MacAddress); // and its first NIC this MAC
        Assert.Equal("waited-for", Container.Name);
        Assert.NotEmpty(Container.Id);
        Assert.Equal(vm.Image, Container.Image.FullName);
        Assert.InRange(Container.CreatedTime, DateTime.UtcNow.AddMinutes(-10), Container.StartedTime);
        Assert.Equal(default, Container.StoppedTime);

        // The SSH port really is the VM's.
        var hostname = await Container.ExecAsync(["hostname"]);
        Assert.Equal("linuxkit\n", hostname.Stdout);
    }
}

[Trait("Category", "Integration")]
public class TestcontainersLifecycleTests
{
    private static LinuxKitBuilder Small(string state, string guest = "dropbear") => new LinuxKitBuilder()
        .WithImage(TestEnvironment.GuestImage(guest))
        .WithMemory(256)
        .WithStateDirectory(state);

    [Theory]
    [InlineData("dropbear", false)]
    [InlineData("openssh", false)]
    [InlineData("dropbear", true)]
    public async Task Lifecycle_raises_its_events_in_order_pauses_resumes_stops_and_leaves_nothing(string guest, bool graceful)
    {
        using var state = new TempDirectory("lkt-tc-");
        var events = new List<string>();
        var key = Path.Combine(state.Path, "own_key");
        LinuxKit.Testing.Ssh.SshKeyPair.Generate(key, "test");
        var logger = new RecordingLogger();
        await using var container = Small(state.Path, guest).WithCpus(2).WithSshKey(key).WithLogger(logger).WithGracefulStop(graceful).Build();
        container.Creating += (_, _) => events.Add("Creating");
        container.Created += (_, _) => events.Add("Created");
        container.Starting += (_, _) => events.Add("Starting");
        container.Started += (_, _) => events.Add("Started");
        container.Pausing += (_, _) => events.Add("Pausing");
        container.Paused += (_, _) => events.Add("Paused");
        container.Unpausing += (_, _) => events.Add("Unpausing");
        container.Unpaused += (_, _) => events.Add("Unpaused");
        container.Stopping += (_, _) => events.Add("Stopping");
        container.Stopped += (_, _) => events.Add("Stopped");

        await container.StartAsync();
        Assert.Equal("2\n", (await container.ExecAsync(["nproc"])).Stdout);
        Assert.Equal(key, container.SshKeyFile);
        Assert.Contains(logger.Lines, l => l.Contains("is ready after", StringComparison.Ordinal));
        await container.PauseAsync();
        Assert.Equal(TestcontainersStates.Paused, container.State);
        // A paused guest runs nothing: a command does not complete until it is resumed.
        using (var shortly = new CancellationTokenSource(TimeSpan.FromSeconds(2)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => container.ExecAsync(["true"], shortly.Token));
        await container.UnpauseAsync();
        Assert.Equal(TestcontainersStates.Running, container.State);
        Assert.Equal(0, (await container.ExecAsync(["true"])).ExitCode);
        Assert.True(container.UnpausedTime >= container.PausedTime);

        await container.StopAsync();
        Assert.Equal(TestcontainersStates.Exited, container.State);
        // Ended at once (a killed container's code), or powered off when asked to stop gracefully.
        Assert.Equal(graceful ? 0 : 137, await container.GetExitCodeAsync());
        Assert.True(container.StoppedTime >= container.StartedTime);
        var (logs, _) = await container.GetLogsAsync(timestampsEnabled: false);
        Assert.Equal(graceful, logs.Contains("reboot: Power down", StringComparison.Ordinal));

        await container.DisposeAsync();
        Assert.Equal(
            ["Creating", "Created", "Starting", "Started", "Pausing", "Paused", "Unpausing", "Unpaused", "Stopping", "Stopped"],
            events);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(state.Path, "vms")));
    }

    [Fact]
    public async Task A_vm_that_powers_off_during_a_wait_fails_the_start_at_once_with_its_console()
    {
        using var state = new TempDirectory("lkt-tc-");
        await using var container = Small(state.Path)
            .WithWaitStrategy(Wait.ForUnixContainer()
                .AddCustomWaitStrategy(new PowerOff())
                .UntilMessageIsLogged("a line the VM never writes", o => o.WithTimeout(TimeSpan.FromMinutes(10))))
            .Build();
        var clock = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<ContainerNotRunningException>(() => container.StartAsync());

        // Far below the wait strategy's 10 minutes: the runner saw the VM end.
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"took {clock.Elapsed}");
        Assert.Contains("reboot: Power down", e.Message, StringComparison.Ordinal);
        Assert.Equal(TestcontainersStates.Exited, container.State);
        Assert.Equal(0, await container.GetExitCodeAsync());
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task A_one_shot_wait_is_met_by_the_console_of_a_vm_that_ran_its_job_and_powered_off()
    {
        using var state = new TempDirectory("lkt-tc-");
        await using var container = Small(state.Path)
            .WithWaitStrategy(Wait.ForUnixContainer()
                .AddCustomWaitStrategy(new PowerOff())
                .UntilMessageIsLogged("reboot: Power down", o => o.WithMode(WaitStrategyMode.OneShot)))
            .Build();

        await container.StartAsync();

        Assert.Equal(0, await container.GetExitCodeAsync());
        Assert.Equal(TestcontainersStates.Exited, container.State);
    }

    [Fact]
    public async Task A_wait_that_never_succeeds_times_out_or_runs_out_of_retries_and_stops_the_vm()
    {
        using var state = new TempDirectory("lkt-tc-");
        await using var timesOut = Small(state.Path)
            .WithWaitStrategy(Wait.ForUnixContainer().UntilCommandIsCompleted("false", o => o.WithTimeout(TimeSpan.FromSeconds(3))))
            .Build();
        await using var runsOut = Small(state.Path)
            .WithWaitStrategy(Wait.ForUnixContainer().UntilCommandIsCompleted(["test", "-e", "/nothing"], o => o.WithRetries(3).WithInterval(TimeSpan.FromMilliseconds(100))))
            .Build();

        await Assert.ThrowsAsync<TimeoutException>(() => timesOut.StartAsync());
        await Assert.ThrowsAsync<RetryLimitExceededException>(() => runsOut.StartAsync());

        Assert.Equal(TestcontainersStates.Exited, timesOut.State);
        Assert.Equal(TestcontainersStates.Exited, runsOut.State);
        await TestEnvironment.AssertNoQemuLeftAsync(state.Path);
    }

    [Fact]
    public async Task A_bind_mount_shares_a_host_folder_with_the_guest()
    {
        using var state = new TempDirectory("lkt-tc-");
        using var shared = new TempDirectory("lkt-share-");
        await File.WriteAllTextAsync(Path.Combine(shared.Path, "from-host.txt"), "hello guest");
        await using var container = new LinuxKitBuilder()
            .WithImage(TestEnvironment.Image("9p"))
            .WithMemory(256)
            .WithStateDirectory(state.Path)
            .WithBindMount(shared.Path, "/mnt/shared")
            .Build();

        await container.StartAsync();
        await container.ExecAsync(["sh", "-c", "echo hello host > /mnt/shared/from-guest.txt"]);

        Assert.Equal("hello guest", Encoding.UTF8.GetString(await container.ReadFileAsync("/mnt/shared/from-host.txt")));
        Assert.Equal("hello host\n", await File.ReadAllTextAsync(Path.Combine(shared.Path, "from-guest.txt")));
    }

    [Fact]
    public async Task A_missing_image_fails_the_start_naming_the_file()
    {
        using var state = new TempDirectory("lkt-tc-");
        await using var container = new LinuxKitBuilder().WithImage("/no/such/image.iso").WithStateDirectory(state.Path).Build();

        var e = await Assert.ThrowsAnyAsync<LinuxKitException>(() => container.StartAsync());

        Assert.Contains("/no/such/image.iso", e.Message, StringComparison.Ordinal);
        Assert.Equal(TestcontainersStates.Undefined, container.State);
    }

    /// <summary>A custom wait strategy that asks the guest to power off, then is satisfied.</summary>
    private sealed class PowerOff : IWaitUntil
    {
        public async Task<bool> UntilAsync(IContainer container)
        {
            await container.ExecAsync(["sh", "-c", "(sleep 1; poweroff) >/dev/null 2>&1 &"]);
            return true;
        }
    }
}
