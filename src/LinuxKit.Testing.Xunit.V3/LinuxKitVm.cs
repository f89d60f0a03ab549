using LinuxKit.Testing.Fixtures;
using Xunit;

namespace LinuxKit.Testing.Xunit;

/// <summary>
/// An xUnit v3 class, collection or assembly fixture
/// (<c>[assembly: AssemblyFixture(typeof(LinuxKitVm))]</c>) that boots one LinuxKit VM for the
/// tests that share it and stops it when they are done. Configuration is that of
/// <see cref="SharedVm"/>: a subclass's <see cref="SharedVm.Configure"/>,
/// <c>[assembly: LinuxKitImage(...)]</c>, LINUXKIT_IMAGE, or the VM named by LINUXKIT_VM_ID.
/// Boot progress and the serial console go to xUnit's diagnostic messages.
/// </summary>
public class LinuxKitVm() : SharedVm(message => TestContext.Current.SendDiagnosticMessage(message)), IAsyncLifetime
{
    ValueTask IAsyncLifetime.InitializeAsync() => new(ConfigureAndStartAsync(testAssembly: null));

    /// <summary>
    /// Sends the console lines the VM writes from now on to the running test's output
    /// (<c>TestContext.Current.TestOutputHelper</c>), so that a failed test shows what the VM said
    /// while it ran. One line in the test class's constructor: <c>vm.StreamConsoleToCurrentTest();</c>.
    /// </summary>
    public void StreamConsoleToCurrentTest() =>
        StreamConsoleTo(TestContext.Current.TestOutputHelper is { } output ? output.WriteLine : null);
}
