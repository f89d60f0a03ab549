namespace LinuxKit.Testing;

/// <summary>
/// A VM that did not become ready: its hypervisor exited, or SSH did not answer in time.
/// </summary>
public sealed class LinuxKitBootException : LinuxKitException
{
    /// <summary>Creates a boot failure with the console tail it saw.</summary>
    public LinuxKitBootException(string message, string consoleTail, int? exitCode = null, Exception? innerException = null)
        : base(Compose(message, consoleTail), innerException ?? new TimeoutException(message))
    {
        ConsoleTail = consoleTail;
        ExitCode = exitCode;
    }

    /// <summary>Creates an exception with no details; prefer the other constructor.</summary>
    public LinuxKitBootException() { ConsoleTail = ""; }

    /// <summary>Creates an exception with a message; prefer the other constructor.</summary>
    public LinuxKitBootException(string message) : base(message) { ConsoleTail = ""; }

    /// <summary>Creates an exception with a message and a cause; prefer the other constructor.</summary>
    public LinuxKitBootException(string message, Exception innerException) : base(message, innerException) { ConsoleTail = ""; }

    /// <summary>The last lines the VM wrote to its serial console.</summary>
    public string ConsoleTail { get; }

    /// <summary>The hypervisor's exit code, when it exited and the code is known.</summary>
    public int? ExitCode { get; }

    private static string Compose(string message, string consoleTail) =>
        string.IsNullOrWhiteSpace(consoleTail)
            ? message + Environment.NewLine + "(the serial console was empty)"
            : message + Environment.NewLine + "Last lines of the serial console:" + Environment.NewLine + consoleTail;
}
