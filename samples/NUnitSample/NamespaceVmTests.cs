using LinuxKit.Testing.NUnit;
using NUnit.Framework;

namespace NUnitSample.WholeNamespace;

// One VM for every fixture in this namespace.
[SetUpFixture]
public class NamespaceVm : LinuxKitFixture;

public class UsesTheNamespaceVm
{
    [Test]
    public async Task Namespace_vm_runs_commands() =>
        Assert.That((await LinuxKitFixture.Get<NamespaceVm>().ExecAsync("true")).ExitCode, Is.Zero);
}
