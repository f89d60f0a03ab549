using LinuxKit.Testing.Fixtures;
using Xunit;
using Xunit.Abstractions;

namespace LinuxKit.Testing.Xunit;

/// <summary>
/// An xUnit class or collection fixture that boots one LinuxKit VM for the tests that share it
/// and stops it when they are done: <c>public class MyTests : IClassFixture&lt;LinuxKitVm&gt;</c>.
/// The image comes from <c>[assembly: LinuxKitImage("os.qcow2")]</c>, from a subclass that
/// overrides <see cref="SharedVm.Configure"/>, or from LINUXKIT_IMAGE; when a build step
/// started a VM and set LINUXKIT_VM_ID, the fixture uses that VM instead of booting another.
/// Boot progress and the serial console go to xUnit's diagnostic messages
/// (<c>"diagnosticMessages": true</c> in xunit.runner.json shows them).
/// </summary>
/// <remarks>Created by xUnit, which passes its diagnostic message sink.</remarks>
public class LinuxKitVm(IMessageSink diagnosticMessageSink)
    : SharedVm(message => diagnosticMessageSink.OnMessage(new Diagnostic(message))), IAsyncLifetime
{
    Task IAsyncLifetime.InitializeAsync() => ConfigureAndStartAsync(testAssembly: null);

    /// <summary>
    /// Sends the console lines the VM writes from now on to <paramref name="output"/>, so that a
    /// failed test shows what the VM said while it ran. One line in the test class's constructor:
    /// <c>public MyTests(LinuxKitVm vm, ITestOutputHelper output) { vm.StreamConsoleTo(output); }</c>.
    /// </summary>
    public void StreamConsoleTo(ITestOutputHelper output)
    {
        ArgumentNullException.ThrowIfNull(output);
        StreamConsoleTo(output.WriteLine);
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();

    private sealed record Diagnostic(string Message) : IDiagnosticMessage;
}
