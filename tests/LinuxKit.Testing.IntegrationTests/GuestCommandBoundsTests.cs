namespace LinuxKit.Testing.IntegrationTests;

/// <summary>One VM, booted with a small output limit, shared by the tests of <see cref="GuestCommandBoundsTests"/>.</summary>
public abstract class SmallLimitVm(string guest) : IAsyncLifetime
{
    public const long Limit = 1024 * 1024;
    public const long ConsoleLimit = 64 * 1024;

    public string State { get; } = Directory.CreateTempSubdirectory("lkt-it-").FullName;

    public LinuxKitManager Manager { get; private set; } = null!;

    public string Id { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Manager = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = State, OutputLimit = Limit, ConsoleLogLimit = ConsoleLimit });
        Id = (await Manager.RunAsync(TestEnvironment.GuestImage(guest), ScratchManager.Small)).Id;
    }

    public async Task DisposeAsync()
    {
        await Manager.DisposeAsync();
        await TestEnvironment.AssertNoQemuLeftAsync(State);
        Directory.Delete(State, recursive: true);
    }
}

public sealed class DropbearSmallLimitVm() : SmallLimitVm("dropbear");

public sealed class OpenSshSmallLimitVm() : SmallLimitVm("openssh");

/// <summary>The bounds against the dropbear guest.</summary>
[Trait("Category", "Integration")]
public class DropbearGuestCommandBoundsTests(DropbearSmallLimitVm vm) : GuestCommandBoundsTests(vm), IClassFixture<DropbearSmallLimitVm>;

/// <summary>The bounds against the OpenSSH guest, as LinuxKit's sshd package runs it.</summary>
[Trait("Category", "Integration")]
public class OpenSshGuestCommandBoundsTests(OpenSshSmallLimitVm vm) : GuestCommandBoundsTests(vm), IClassFixture<OpenSshSmallLimitVm>;

/// <summary>What one command leaves behind or sends back cannot spill into another's result or exhaust the host.</summary>
[Trait("Category", "Integration")]
public abstract class GuestCommandBoundsTests(SmallLimitVm vm)
{
    [Fact]
    public async Task Output_of_a_background_child_left_by_one_command_never_lands_in_a_later_result()
    {
        var left = await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", "(sleep 1; echo late; sleep 1; echo later >&2) & echo started"]);
        Assert.Equal("started\n", left.Stdout);

        for (var i = 0; i < 20; i++)
        {
            // Each takes 0.15 s, so the leftover child writes while one of them runs.
            var result = await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", $"sleep 0.15; echo {i}"]);
            Assert.Equal($"{i}\n", result.Stdout);
            Assert.Equal("", result.Stderr);
        }
    }

    [Theory]
    [InlineData("done")]
    [InlineData("X=1")]
    [InlineData("fi")]
    public async Task A_program_named_like_shell_syntax_is_not_found_and_the_shell_lives_on(string program)
    {
        var result = await vm.Manager.ExecAsync(vm.Id, [program]);

        Assert.Equal(127, result.ExitCode);
        Assert.Equal("alive\n", (await vm.Manager.ExecAsync(vm.Id, ["echo", "alive"])).Stdout);
    }

    [Fact]
    public async Task Output_over_the_limit_is_an_error_naming_the_limit_and_the_next_command_is_unaffected()
    {
        var e = await Assert.ThrowsAsync<LinuxKitException>(() => vm.Manager.ExecAsync(vm.Id, ["head", "-c", $"{3 * SmallLimitVm.Limit}", "/dev/zero"]));

        Assert.Contains($"over the output limit of {SmallLimitVm.Limit} bytes", e.Message, StringComparison.Ordinal);
        Assert.Equal("next\n", (await vm.Manager.ExecAsync(vm.Id, ["echo", "next"])).Stdout);
    }

    [Fact]
    public async Task A_file_over_the_limit_is_refused_before_it_is_sent_naming_its_size()
    {
        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", $"head -c {2 * SmallLimitVm.Limit} /dev/zero > /tmp/big"]);

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => vm.Manager.ReadFileAsync(vm.Id, "/tmp/big"));

        Assert.Contains($"is {2 * SmallLimitVm.Limit} bytes, over the output limit", e.Message, StringComparison.Ordinal);
        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", "echo small > /tmp/small"]);
        Assert.Equal("small\n"u8.ToArray(), await vm.Manager.ReadFileAsync(vm.Id, "/tmp/small")); // the next read works
    }

    [Fact]
    public async Task A_cancelled_read_stops_and_the_connection_serves_the_next_call()
    {
        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", $"head -c {SmallLimitVm.Limit} /dev/urandom > /tmp/medium"]);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        // /proc/kmsg is a regular file whose read waits for the kernel's next message: the read
        // can only end by the cancellation, however fast the guest.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => vm.Manager.ReadFileAsync(vm.Id, "/proc/kmsg", cancel.Token));

        Assert.Equal((int)SmallLimitVm.Limit, (await vm.Manager.ReadFileAsync(vm.Id, "/tmp/medium")).Length);
    }

    [Fact]
    public async Task A_pipe_or_device_is_refused_naming_what_it_is_instead_of_read_for_ever()
    {
        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", "rm -f /tmp/pipe; mkfifo /tmp/pipe"]);

        foreach (var path in new[] { "/tmp/pipe", "/dev/zero" })
        {
            var e = await Assert.ThrowsAsync<LinuxKitException>(() => vm.Manager.ReadFileAsync(vm.Id, path));
            Assert.Contains("not a regular file", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_guest_that_writes_without_end_is_read_only_up_to_the_limit_and_every_call_fails_naming_it()
    {
        // A hostile guest: every session's shell (root's login shell, read when a connection
        // logs in; dropbear wants it in /etc/shells) ignores its script and writes zeros for
        // ever, markers and head -c or not.
        // The shared VM's own connection logged in before and keeps the real shell to undo it.
        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c",
            "cp /etc/passwd /etc/passwd.orig && mkdir -p /usr/local/bin && printf '#!/bin/sh\\nexec cat /dev/zero\\n' > /usr/local/bin/flood && chmod +x /usr/local/bin/flood && echo /usr/local/bin/flood >> /etc/shells "
            + "&& sed -i 's|^root:\\(.*\\):[^:]*$|root:\\1:/usr/local/bin/flood|' /etc/passwd && grep -q '^root:.*/usr/local/bin/flood$' /etc/passwd"]);
        try
        {
            await using var newcomer = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = vm.State, OutputLimit = SmallLimitVm.Limit });

            foreach (var call in new Func<Task>[]
            {
                () => newcomer.ExecAsync(vm.Id, ["echo", "hi"]),
                () => newcomer.ReadFileAsync(vm.Id, "/etc/passwd"),
                () => newcomer.WriteFileAsync(vm.Id, "/tmp/in", new MemoryStream("x"u8.ToArray()), (UnixFileMode)0b110_100_100),
            })
            {
                // Without a host-side bound these read for ever (into memory, for the file): the
                // wait only turns that into a failure.
                var e = await Assert.ThrowsAsync<LinuxKitException>(() => call().WaitAsync(TimeSpan.FromMinutes(2)));
                Assert.Contains("over the output limit of", e.Message, StringComparison.Ordinal);
            }
        }
        finally
        {
            await vm.Manager.ExecAsync(vm.Id, ["cp", "/etc/passwd.orig", "/etc/passwd"]);
        }
        Assert.Equal("alive\n", (await vm.Manager.ExecAsync(vm.Id, ["echo", "alive"])).Stdout);
    }

    [Fact]
    public async Task A_console_log_past_its_limit_is_rotated_and_the_vm_goes_on()
    {
        var log = (await vm.Manager.InspectAsync(vm.Id)).ConsoleLog;

        await vm.Manager.ExecAsync(vm.Id, ["sh", "-c", $"head -c {4 * SmallLimitVm.ConsoleLimit} /dev/zero | tr '\\0' x > /dev/console; echo marker-after-flood > /dev/console"]);

        bool MarkerIn(string file) => File.Exists(file) && File.ReadAllText(file).Contains("marker-after-flood", StringComparison.Ordinal);
        Assert.True(
            await Polling.UntilAsync(() => MarkerIn(log) || MarkerIn(log + ".1"), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), CancellationToken.None),
            "the line written after the flood never reached the console log");
        // The owner's watcher rotates on its own schedule, later on a busy machine.
        bool Rotated() => File.Exists(log + ".1") && new FileInfo(log).Length <= SmallLimitVm.ConsoleLimit;
        Assert.True(
            await Polling.UntilAsync(Rotated, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), CancellationToken.None),
            $"the log was never rotated: console.log is {new FileInfo(log).Length} bytes, console.log.1 {(File.Exists(log + ".1") ? "exists" : "does not exist")}");
        Assert.Equal("alive\n", (await vm.Manager.ExecAsync(vm.Id, ["echo", "alive"])).Stdout);
    }
}
