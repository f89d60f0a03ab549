using System.Collections.Concurrent;
using LinuxKit.Testing.Fixtures;
using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace LinuxKit.Testing.NUnit;

/// <summary>
/// Base class for an NUnit test fixture whose tests share one LinuxKit VM, booted in
/// OneTimeSetUp and stopped in OneTimeTearDown: <c>public class MyTests : LinuxKitFixture</c>,
/// then <c>await ExecAsync("uname", "-a")</c> in a test. Fixtures that run in parallel each get
/// their own VM. As a <c>[SetUpFixture]</c> it gives one VM to a whole namespace; its tests reach
/// it with <see cref="Get{T}"/>. Configuration is that of <see cref="SharedVm"/>.
/// Boot progress and the serial console go to NUnit's progress output, and a failed test's
/// output gets the console lines the VM wrote while it ran.
/// </summary>
[ConsoleOfFailedTests]
public abstract class LinuxKitFixture : SharedVm
{
    private static readonly ConcurrentDictionary<Type, LinuxKitFixture> Running = new();

    /// <summary>Creates the fixture; NUnit calls this.</summary>
    protected LinuxKitFixture() : base(message => TestContext.Progress.WriteLine(message)) { }

    /// <summary>The running VM of a <c>[SetUpFixture]</c> (or any started fixture) of type <typeparamref name="T"/>.</summary>
    public static T Get<T>() where T : LinuxKitFixture =>
        Running.TryGetValue(typeof(T), out var fixture) ? (T)fixture
            : throw new InvalidOperationException($"{typeof(T).Name} has not started a VM: is it a [SetUpFixture] of this namespace, and did its OneTimeSetUp succeed?");

    /// <summary>Boots (or attaches to) the VM.</summary>
    [OneTimeSetUp]
    public async Task StartVmAsync()
    {
        await ConfigureAndStartAsync(GetType().Assembly).ConfigureAwait(false);
        Running[GetType()] = this;
    }

    private readonly ConcurrentDictionary<string, DateTimeOffset> _testStarts = new();

    // Per test, through an action attribute rather than [SetUp]/[TearDown], which NUnit refuses
    // on a [SetUpFixture].
    // The first test's output also says how the VM was started: NUnit's progress output, where
    // that goes too, is not shown under Microsoft Testing Platform.
    internal void NoteTestStart(ITest test)
    {
        _testStarts[test.Id] = DateTimeOffset.UtcNow;
        WriteHowItStartedOnce(TestContext.Out.WriteLine);
    }

    internal void ReportConsoleIfFailed(ITest test)
    {
        if (!_testStarts.TryRemove(test.Id, out var started)) return;
        if (TestContext.CurrentContext.Result.Outcome.Status != TestStatus.Failed) return;
        if (ConsoleReportSinceAsync(started).GetAwaiter().GetResult() is { } report) TestContext.Out.Write(report);
    }

    /// <summary>Stops the VM if this fixture booted it.</summary>
    [OneTimeTearDown]
    public async Task StopVmAsync()
    {
        Running.TryRemove(GetType(), out _);
        await DisposeAsync().ConfigureAwait(false);
    }
}
