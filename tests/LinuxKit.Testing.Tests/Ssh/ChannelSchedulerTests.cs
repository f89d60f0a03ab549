using LinuxKit.Testing.Ssh;

namespace LinuxKit.Testing.Tests.Ssh;

public class ChannelSchedulerTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Settle = TimeSpan.FromMilliseconds(200);

    [Fact]
    public async Task On_dropbear_no_shell_starts_while_a_channel_of_its_own_is_open()
    {
        var shells = new FakeShells();
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: true, Wait);
        var copyOpen = new TaskCompletionSource();
        var copy = scheduler.OnChannelOfItsOwnAsync(async _ => { await copyOpen.Task; return 0; }, CancellationToken.None);

        var command = scheduler.RunAsync(ShellCommand.Script("true"), 100, NoChannelOfItsOwn, CancellationToken.None);
        await Task.Delay(Settle);
        Assert.Equal(0, shells.Started);
        Assert.False(command.IsCompleted);

        copyOpen.SetResult();
        await copy;
        Assert.Equal(0, (await command.WaitAsync(Wait)).ExitCode);
        Assert.Equal(1, shells.Started);
    }

    [Fact]
    public async Task On_other_servers_a_shell_starts_beside_an_open_channel()
    {
        var shells = new FakeShells();
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: false, Wait);
        var copyOpen = new TaskCompletionSource();
        var copy = scheduler.OnChannelOfItsOwnAsync(async _ => { await copyOpen.Task; return 0; }, CancellationToken.None);

        Assert.Equal(0, (await scheduler.RunAsync(ShellCommand.Script("true"), 100, NoChannelOfItsOwn, CancellationToken.None).WaitAsync(Wait)).ExitCode);
        Assert.False(copy.IsCompleted);
        copyOpen.SetResult();
        await copy;
    }

    [Fact]
    public async Task At_most_four_commands_run_at_once_and_shells_are_reused()
    {
        var shells = new FakeShells { Hold = new TaskCompletionSource() };
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: true, Wait);
        var commands = Enumerable.Range(0, 6).Select(i => scheduler.RunAsync(ShellCommand.Script($"c{i}"), 100, NoChannelOfItsOwn, CancellationToken.None)).ToList();
        await Polling.UntilAsync(() => shells.Running == ChannelScheduler.MaxParallelCommands, TimeSpan.FromMilliseconds(10), Wait, CancellationToken.None);
        await Task.Delay(Settle);
        Assert.Equal(ChannelScheduler.MaxParallelCommands, shells.Running);

        shells.Hold.SetResult();
        await Task.WhenAll(commands).WaitAsync(Wait);
        Assert.Equal(ChannelScheduler.MaxParallelCommands, shells.MostRunning);
        Assert.Equal(ChannelScheduler.MaxParallelCommands, shells.Started);
        Assert.Equal(ChannelScheduler.MaxParallelCommands, scheduler.IdleShells);
    }

    [Fact]
    public async Task A_cancelled_command_runs_to_its_end_and_its_shell_serves_the_next_caller()
    {
        var shells = new FakeShells { Hold = new TaskCompletionSource() };
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: true, Wait);
        using var cancel = new CancellationTokenSource();
        var abandoned = scheduler.RunAsync(ShellCommand.Script("sleep 60"), 100, NoChannelOfItsOwn, cancel.Token);
        await Polling.UntilAsync(() => shells.Running == 1, TimeSpan.FromMilliseconds(10), Wait, CancellationToken.None);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);

        shells.Hold.SetResult();
        await Polling.UntilAsync(() => scheduler.IdleShells == 1, TimeSpan.FromMilliseconds(10), Wait, CancellationToken.None);
        Assert.Equal(["sleep 60"], shells.All[0].Ran);
        await scheduler.RunAsync(ShellCommand.Script("next"), 100, NoChannelOfItsOwn, CancellationToken.None).WaitAsync(Wait);
        Assert.Equal(1, shells.Started);
        Assert.Equal(["sleep 60", "next"], shells.All[0].Ran);
    }

    [Fact]
    public async Task A_command_whose_shell_was_turned_down_runs_on_a_channel_of_its_own()
    {
        var shells = new FakeShells { TurnDown = true };
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: true, Wait);
        var result = await scheduler.RunAsync(ShellCommand.Script("id"), 100, () => Task.FromResult(new ExecResult(0, "own channel", "")), CancellationToken.None).WaitAsync(Wait);
        Assert.Equal("own channel", result.Stdout);
        Assert.Equal(0, scheduler.IdleShells);
        Assert.True(shells.All[0].Disposed);
    }

    [Fact]
    public async Task A_server_that_runs_no_shell_gets_each_command_on_a_channel_of_its_own()
    {
        using var scheduler = new ChannelScheduler(() => null, oneStartAtATime: true, Wait);
        var result = await scheduler.RunAsync(ShellCommand.Script("id"), 100, () => Task.FromResult(new ExecResult(3, "own", "")), CancellationToken.None).WaitAsync(Wait);
        Assert.Equal(3, result.ExitCode);
    }

    [Fact]
    public async Task When_abandoned_work_holds_every_channel_the_next_caller_is_told_why()
    {
        var shells = new FakeShells();
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: false, TimeSpan.FromMilliseconds(300));
        var never = new TaskCompletionSource<int>();
        var held = Enumerable.Range(0, ChannelScheduler.MaxChannels).Select(_ => scheduler.OnChannelOfItsOwnAsync(_ => never.Task, CancellationToken.None)).ToList();

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => scheduler.RunAsync(ShellCommand.Script("true"), 100, NoChannelOfItsOwn, CancellationToken.None));
        Assert.Contains($"All {ChannelScheduler.MaxChannels} SSH channels", e.Message, StringComparison.Ordinal);
        never.SetResult(0);
        await Task.WhenAll(held);
    }

    [Fact]
    public async Task On_dropbear_a_channel_that_never_closes_is_named_instead_of_waited_for()
    {
        var shells = new FakeShells();
        using var scheduler = new ChannelScheduler(shells.Start, oneStartAtATime: true, TimeSpan.FromMilliseconds(300));
        var never = new TaskCompletionSource<int>();
        var hung = scheduler.OnChannelOfItsOwnAsync(_ => never.Task, CancellationToken.None);

        var e = await Assert.ThrowsAsync<LinuxKitException>(() => scheduler.RunAsync(ShellCommand.Script("true"), 100, NoChannelOfItsOwn, CancellationToken.None));
        Assert.Contains("has not closed (is the guest hung?)", e.Message, StringComparison.Ordinal);
        never.SetResult(0);
        await hung;
    }

    private static Task<ExecResult> NoChannelOfItsOwn() => throw new InvalidOperationException("The command should have run on a resident shell.");

    private sealed class FakeShells
    {
        private int _running;
        private int _mostRunning;

        public TaskCompletionSource? Hold { get; init; }
        public bool TurnDown { get; init; }
        public List<FakeShell> All { get; } = [];
        public int Started { get { lock (All) return All.Count; } }
        public int Running => Volatile.Read(ref _running);
        public int MostRunning => Volatile.Read(ref _mostRunning);

        public ICommandShell? Start()
        {
            var shell = new FakeShell(this);
            lock (All) All.Add(shell);
            return shell;
        }

        internal async Task<ExecResult> RunAsync(FakeShell shell, string commandLine)
        {
            if (TurnDown) throw new ResidentShellEndedException("turned down", neverRan: true);
            var now = Interlocked.Increment(ref _running);
            int most;
            while (now > (most = Volatile.Read(ref _mostRunning)) && Interlocked.CompareExchange(ref _mostRunning, now, most) != most) { }
            try
            {
                lock (shell.Ran) shell.Ran.Add(commandLine);
                if (Hold is not null) await Hold.Task;
                return new ExecResult(0, commandLine, "");
            }
            finally
            {
                Interlocked.Decrement(ref _running);
            }
        }
    }

    private sealed class FakeShell(FakeShells owner) : ICommandShell
    {
        public List<string> Ran { get; } = [];
        public bool Disposed { get; private set; }
        public Task<ExecResult> RunAsync(ShellCommand command, long outputLimit) => owner.RunAsync(this, command.Line);
        public Task CloseAsync(TimeSpan timeout) { Disposed = true; return Task.CompletedTask; }
        public void Dispose() => Disposed = true;
    }
}
