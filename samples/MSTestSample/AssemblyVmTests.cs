using LinuxKit.Testing.MSTest;

namespace MSTestSample;

// One VM for the whole assembly, for the classes that derive from LinuxKitAssemblyTest.
[TestClass]
public static class AssemblyVm
{
    [AssemblyInitialize]
    public static Task StartAsync(TestContext context) => LinuxKitAssembly.StartAsync(context);

    [AssemblyCleanup]
    public static Task StopAsync() => LinuxKitAssembly.StopAsync();
}

[TestClass]
public class AssemblyVmTests : LinuxKitAssemblyTest
{
    [TestMethod]
    public async Task The_assembly_vm_answers()
    {
        var result = await Vm.ExecAsync(["true"], TestContext.CancellationToken);
        Assert.AreEqual(0, result.ExitCode);
    }
}
