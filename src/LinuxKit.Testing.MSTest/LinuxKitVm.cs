using LinuxKit.Testing.Fixtures;

namespace LinuxKit.Testing.MSTest;

/// <summary>
/// The VM a test class (<see cref="LinuxKitTest{TVm}"/>) or a test assembly
/// (<see cref="LinuxKitAssembly"/>) shares. Configuration is that of <see cref="SharedVm"/>:
/// <c>[assembly: LinuxKitImage(...)]</c> (or on the test class), a subclass's
/// <see cref="SharedVm.Configure"/>, LINUXKIT_IMAGE, or the VM a build step handed off. Boot
/// progress and the serial console go to the output of the <see cref="TestContext"/> that
/// started it, which MSTest shows with the class's first test.
/// </summary>
public class LinuxKitVm() : SharedVm(message => Write(message))
{
    // The TestContext of the ClassInitialize or AssemblyInitialize that boots the VM; MSTest
    // boots classes one after another, and a write after that context ended is dropped.
    private static readonly AsyncLocal<TestContext?> Output = new();

    // A ClassInitialize's output shows with the class's first test; an AssemblyInitialize's
    // shows nowhere, so that VM's start goes into the first test's output instead.
    private bool _startShownWithFirstTest;

    /// <summary>A new VM of type <typeparamref name="TVm"/>, started; one whose start failed is disposed.</summary>
    internal static async Task<TVm> StartNewAsync<TVm>(TestContext context, bool contextShownWithFirstTest) where TVm : LinuxKitVm, new()
    {
        var vm = new TVm();
        try
        {
            await vm.StartAsync(context, contextShownWithFirstTest).ConfigureAwait(false);
            return vm;
        }
        catch
        {
            await vm.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartAsync(TestContext context, bool contextShownWithFirstTest)
    {
        _startShownWithFirstTest = contextShownWithFirstTest;
        // The test class's assembly: where its [assembly: LinuxKitImage] is and relative paths start.
        // (MSTest names the class in a ClassInitialize's context, and throws when asked in an AssemblyInitialize's.)
        var testAssembly = context.Properties.TryGetValue("FullyQualifiedTestClassName", out var named) && named is string name
            ? AppDomain.CurrentDomain.GetAssemblies().Select(a => a.GetType(name)).FirstOrDefault(t => t is not null)?.Assembly
            : null;
        Output.Value = context;
        try
        {
            await ConfigureAndStartAsync(testAssembly, context.CancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Output.Value = null;
        }
    }

    /// <summary>Writes how the VM was started to the first test's output, unless MSTest shows it there already.</summary>
    internal void ReportStartTo(TestContext test)
    {
        if (!_startShownWithFirstTest) WriteHowItStartedOnce(test.WriteLine);
    }

    private static void Write(string message)
    {
        try
        {
            Output.Value?.WriteLine(message);
        }
        catch (Exception e) when (e is InvalidOperationException or ObjectDisposedException)
        {
            // The context has ended.
        }
    }
}
