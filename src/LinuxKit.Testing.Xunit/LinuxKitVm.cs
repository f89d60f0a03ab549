using LinuxKit.Testing.Fixtures;
using Xunit;
using Xunit.Abstractions;

namespace LinuxKit.Testing.Xunit;

/// <summary>
/// An xUnit class or collection fixture that boots one LinuxKit VM for the tests that share it
/// and stops it when they are done: <c>public class MyTests : IClassFixture&lt;LinuxKitVm&gt;</c>.
/// The image comes from <c>[assembly: LinuxKitImage("os.qcow2")]</c>, from a subclass that
/// overrides <see cref="Configure"/>, or from LINUXKIT_IMAGE; when a build step started a VM
/// and set LINUXKIT_VM_ID, the fixture uses that VM instead of booting another.
/// Boot progress and the serial console go to xUnit's diagnostic messages
/// (<c>"diagnosticMessages": true</c> in xunit.runner.json shows them).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xUnit ends fixtures through IAsyncLifetime.DisposeAsync.")]
public class LinuxKitVm : IAsyncLifetime
{
    private readonly SharedVm _vm;

    /// <summary>Created by xUnit, which passes its diagnostic message sink.</summary>
    public LinuxKitVm(IMessageSink diagnosticMessageSink)
    {
        ArgumentNullException.ThrowIfNull(diagnosticMessageSink);
        _vm = new SharedVm(message => diagnosticMessageSink.OnMessage(new Diagnostic(message)));
    }

    /// <summary>The running VM.</summary>
    public Container Container => _vm.Container;

    /// <summary>The host that reaches forwarded ports (127.0.0.1).</summary>
    public string Host => _vm.Host;

    /// <summary>The host port of the VM's SSH server.</summary>
    public int SshPort => _vm.SshPort;

    /// <summary>The SSH user.</summary>
    public string SshUser => _vm.SshUser;

    /// <summary>The private key that logs in.</summary>
    public string SshKeyFile => _vm.SshKeyFile;

    /// <summary>Forwarded ports: host port to guest port.</summary>
    public IReadOnlyDictionary<int, int> Ports => _vm.Ports;

    /// <summary>The host port forwarded to a guest port.</summary>
    public int HostPortFor(int guestPort) => _vm.HostPortFor(guestPort);

    /// <summary>Runs a command in the VM; each argument reaches the program as given.</summary>
    public Task<ExecResult> ExecAsync(params string[] command) => _vm.ExecAsync(command);

    /// <summary>Runs a command in the VM.</summary>
    public Task<ExecResult> ExecAsync(IReadOnlyList<string> command, CancellationToken cancellationToken) => _vm.ExecAsync(command, cancellationToken);

    /// <summary>Everything the VM wrote to its serial console so far.</summary>
    public Task<string> ReadConsoleAsync(CancellationToken cancellationToken = default) => _vm.ReadConsoleAsync(cancellationToken);

    /// <summary>
    /// Sets the image and options in a subclass: <c>vm.Image = "os.iso"; vm.Options = vm.Options with { Memory = 512 };</c>.
    /// Runs before the assembly attribute and LINUXKIT_IMAGE are consulted.
    /// </summary>
    protected virtual void Configure(SharedVm vm) { }

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        Configure(_vm);
        _vm.ApplyDefaults(GetType().Assembly == typeof(LinuxKitVm).Assembly ? null : GetType().Assembly);
        await _vm.StartAsync();
    }

    /// <inheritdoc />
    public async Task DisposeAsync() => await _vm.DisposeAsync();

    private sealed record Diagnostic(string Message) : IDiagnosticMessage;
}
