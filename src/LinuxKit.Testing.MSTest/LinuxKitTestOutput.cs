namespace LinuxKit.Testing.MSTest;

/// <summary>
/// Puts the console lines a VM wrote during a failed test into that test's output. The base of
/// <see cref="LinuxKitTest{TVm}"/> and <see cref="LinuxKitAssemblyTest"/>.
/// </summary>
public abstract class LinuxKitTestOutput
{
    private DateTimeOffset _started;

    /// <summary>The running test's context; MSTest sets it.</summary>
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The VM whose console a failed test's output gets; null when there is none.</summary>
    private protected abstract LinuxKitVm? CurrentVm { get; }

    /// <summary>Notes when the test starts (the first test's output also gets how an assembly VM was started); MSTest calls this.</summary>
    [TestInitialize]
    public void NoteTestStart()
    {
        _started = DateTimeOffset.UtcNow;
        CurrentVm?.ReportStartTo(TestContext);
    }

    /// <summary>After a failed test, writes what the VM's console said while it ran to its output; MSTest calls this.</summary>
    [TestCleanup]
    public async Task ReportConsoleIfFailedAsync()
    {
        if (TestContext.CurrentTestOutcome is UnitTestOutcome.Passed or UnitTestOutcome.Inconclusive || CurrentVm is not { } vm) return;
        if (await vm.ConsoleReportSinceAsync(_started).ConfigureAwait(false) is { } report) TestContext.Write(report);
    }
}
