using NUnit.Framework;
using NUnit.Framework.Interfaces;

namespace LinuxKit.Testing.NUnit;

/// <summary>
/// Notes when each test of a <see cref="LinuxKitFixture"/> starts, and after one that failed
/// writes the console lines the VM wrote meanwhile to the test's output (<c>TestContext.Out</c>).
/// On the fixture base class, so every fixture derived from it has it.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = true)]
internal sealed class ConsoleOfFailedTestsAttribute : Attribute, ITestAction
{
    public ActionTargets Targets => ActionTargets.Test;

    public void BeforeTest(ITest test)
    {
        if (test.Fixture is LinuxKitFixture fixture) fixture.NoteTestStart(test);
    }

    public void AfterTest(ITest test)
    {
        if (test.Fixture is LinuxKitFixture fixture) fixture.ReportConsoleIfFailed(test);
    }
}
