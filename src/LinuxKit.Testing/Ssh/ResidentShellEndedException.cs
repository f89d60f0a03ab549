using Renci.SshNet.Common;

namespace LinuxKit.Testing.Ssh;

/// <summary>The resident shell's channel ended before a command's end marker.</summary>
internal sealed class ResidentShellEndedException(string message, bool neverRan) : SshException(message)
{
    /// <summary>True when no shell ever ran on the channel (the exec request failed), so the command did not run.</summary>
    public bool NeverRan { get; } = neverRan;
}
