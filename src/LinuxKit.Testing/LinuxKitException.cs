namespace LinuxKit.Testing;

/// <summary>
/// The one exception type the SDK raises. Its message names the thing (file, option, VM id)
/// and the reason, and where there is one, what to do about it.
/// </summary>
public class LinuxKitException : Exception
{
    /// <summary>Creates an exception with a message.</summary>
    public LinuxKitException(string message) : base(message) { }

    /// <summary>Creates an exception with a message and the error that caused it.</summary>
    public LinuxKitException(string message, Exception innerException) : base(message, innerException) { }

    /// <summary>Creates an exception with no message; prefer the other constructors.</summary>
    public LinuxKitException() { }
}
