namespace LinuxKit.Testing.Tool;

/// <summary>The tool's exit codes (the README's table lists them).</summary>
internal static class ExitCodes
{
    /// <summary>Done.</summary>
    public const int Ok = 0;

    /// <summary>The operation failed (no such VM, QEMU missing, a boot that failed, a doctor check that failed); stderr says why.</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong: an unknown command or option, a missing argument.</summary>
    public const int Usage = 2;

    /// <summary>`exec` could not run the command at all (the VM is not running, SSH failed): not the guest's code.</summary>
    public const int ExecFailed = 125;

    /// <summary>Interrupted (Ctrl-C); a VM that `run` started without --detach is stopped.</summary>
    public const int Interrupted = 130;
}
