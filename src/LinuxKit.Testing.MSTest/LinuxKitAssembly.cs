
namespace LinuxKit.Testing.MSTest;

/// <summary>
/// One VM for a whole test assembly, from the assembly's own set-up:
/// <code>
/// [TestClass]
/// public static class AssemblyVm
/// {
///     [AssemblyInitialize] public static Task Start(TestContext context) => LinuxKitAssembly.StartAsync(context);
///     [AssemblyCleanup] public static Task Stop() => LinuxKitAssembly.StopAsync();
/// }
/// </code>
/// Tests reach it as <see cref="Vm"/>, or derive from <see cref="LinuxKitAssemblyTest"/>.
/// A boot that fails fails every test of the assembly at once with the reason.
/// </summary>
public static class LinuxKitAssembly
{
    private static LinuxKitVm? _vm;

    /// <summary>The assembly's VM.</summary>
    /// <exception cref="InvalidOperationException">No AssemblyInitialize has started it.</exception>
    public static LinuxKitVm Vm => _vm ?? throw new InvalidOperationException("No assembly VM is running: call LinuxKitAssembly.StartAsync from the assembly's [AssemblyInitialize].");

    internal static LinuxKitVm? Current => _vm;

    /// <summary>Boots (or attaches to) the assembly's VM, of type <see cref="LinuxKitVm"/>.</summary>
    public static Task StartAsync(TestContext context) => StartAsync<LinuxKitVm>(context);

    /// <summary>Boots (or attaches to) the assembly's VM, of type <typeparamref name="TVm"/> (a subclass that overrides <c>Configure</c>).</summary>
    public static async Task StartAsync<TVm>(TestContext context) where TVm : LinuxKitVm, new()
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_vm is not null) throw new InvalidOperationException("The assembly VM is already running: StartAsync belongs in the one [AssemblyInitialize].");
        _vm = await LinuxKitVm.StartNewAsync<TVm>(context, contextShownWithFirstTest: false).ConfigureAwait(false);
    }

    /// <summary>Stops the assembly's VM, if it booted one.</summary>
    public static async Task StopAsync()
    {
        var vm = Interlocked.Exchange(ref _vm, null);
        if (vm is not null) await vm.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>Base class for a test class that uses the assembly's VM (<see cref="LinuxKitAssembly"/>), with its console beside failed tests.</summary>
public abstract class LinuxKitAssemblyTest : LinuxKitTestOutput
{
    /// <summary>The assembly's VM.</summary>
    public static LinuxKitVm Vm => LinuxKitAssembly.Vm;

    /// <inheritdoc />
    private protected override LinuxKitVm? CurrentVm => LinuxKitAssembly.Current;
}
