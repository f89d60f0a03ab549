using System.Collections.Concurrent;
using LinuxKit.Testing.Fixtures;
using TUnit.Core.Interfaces;

namespace LinuxKit.Testing.TUnit;

/// <summary>
/// A LinuxKit VM as a TUnit shared data source:
/// <c>[ClassDataSource&lt;LinuxKitVm&gt;(Shared = SharedType.PerClass)]</c> on a test class
/// whose constructor takes it (or <c>PerAssembly</c>, <c>Keyed</c>, <c>PerTestSession</c>).
/// TUnit boots it before the first test that uses it (<see cref="IAsyncInitializer"/>) and
/// stops it after the last (<see cref="IAsyncDisposable"/>). Configuration is that of
/// <see cref="SharedVm"/>: <c>[assembly: LinuxKitImage(...)]</c>, a subclass's
/// <see cref="SharedVm.Configure"/>, LINUXKIT_IMAGE, or the VM a build step handed off. Boot
/// progress goes to the output of the test that started it; a failed test's output gets the
/// console lines the VM wrote while it ran.
/// </summary>
public class LinuxKitVm() : SharedVm(message => TestContext.Current?.OutputWriter.WriteLine(message)), IAsyncInitializer, ITestStartEventReceiver, ITestEndEventReceiver
{
    private readonly ConcurrentDictionary<TestContext, DateTimeOffset> _testStarts = new();

    /// <summary>Boots (or attaches to) the VM; TUnit calls this once, before the first test that uses it.</summary>
    public Task InitializeAsync() =>
        ConfigureAndStartAsync(System.Reflection.Assembly.GetEntryAssembly(), TestContext.Current?.Execution.CancellationToken ?? default);

    /// <summary>Notes when a test that uses the VM starts; TUnit calls this.</summary>
    public ValueTask OnTestStart(TestContext context)
    {
        _testStarts[context] = DateTimeOffset.UtcNow;
        return ValueTask.CompletedTask;
    }

    /// <summary>After a failed test, writes what the VM's console said while it ran to its output; TUnit calls this.</summary>
    public async ValueTask OnTestEnd(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!_testStarts.TryRemove(context, out var started) || context.Execution.Result?.State != TestState.Failed) return;
        if (await ConsoleReportSinceAsync(started).ConfigureAwait(false) is { } report) await context.OutputWriter.WriteAsync(report).ConfigureAwait(false);
    }
}
