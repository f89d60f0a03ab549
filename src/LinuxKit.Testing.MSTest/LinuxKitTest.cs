using System.Collections.Concurrent;

namespace LinuxKit.Testing.MSTest;

/// <summary>
/// Base class for an MSTest test class whose tests share one LinuxKit VM, booted in the class's
/// ClassInitialize and stopped in its ClassCleanup: <c>[TestClass] public class MyTests : LinuxKitTest</c>,
/// then <c>await Vm.ExecAsync("uname", "-a")</c> in a test. Each derived class gets its own
/// VM; a boot that fails fails that class's tests at once with the reason. A failed test's
/// output gets the console lines the VM wrote while it ran.
/// </summary>
/// <typeparam name="TVm">The VM type: <see cref="LinuxKitVm"/>, or a subclass that overrides <c>Configure</c>.</typeparam>
public abstract class LinuxKitTest<TVm> : LinuxKitTestOutput
    where TVm : LinuxKitVm, new()
{
    private static readonly ConcurrentDictionary<string, TVm> Running = new();

    /// <summary>This class's VM.</summary>
    /// <exception cref="InvalidOperationException">The class's ClassInitialize has not booted one.</exception>
    public TVm Vm => Running.TryGetValue(GetType().FullName!, out var vm) ? vm
        : throw new InvalidOperationException($"{GetType().Name} has no VM: its ClassInitialize did not run or failed.");

    /// <inheritdoc />
    private protected override LinuxKitVm? CurrentVm => Running.GetValueOrDefault(GetType().FullName!);

    /// <summary>Boots (or attaches to) the VM of the class that is starting; MSTest calls this for each derived class.</summary>
    /// <param name="context">The class's context: boot progress goes to its output.</param>
    [ClassInitialize(InheritanceBehavior.BeforeEachDerivedClass)]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1000", Justification = "MSTest runs only static ClassInitialize methods; the VM type is the class's.")]
    public static async Task StartClassVmAsync(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var name = context.FullyQualifiedTestClassName ?? throw new InvalidOperationException("MSTest gave ClassInitialize no test class name.");
        Running[name] = await LinuxKitVm.StartNewAsync<TVm>(context, contextShownWithFirstTest: true).ConfigureAwait(false);
    }

    /// <summary>Stops the VM of the class that ended, if it booted one.</summary>
    /// <param name="context">The class's context.</param>
    [ClassCleanup(InheritanceBehavior.BeforeEachDerivedClass)]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1000", Justification = "MSTest runs only static ClassCleanup methods.")]
    public static async Task StopClassVmAsync(TestContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.FullyQualifiedTestClassName is { } name && Running.TryRemove(name, out var vm)) await vm.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>A test class with a VM of its own, of type <see cref="LinuxKitVm"/>.</summary>
public abstract class LinuxKitTest : LinuxKitTest<LinuxKitVm>;
