using Microsoft.Build.Framework;

namespace LinuxKit.Testing.MSBuild;

/// <summary>Runs a shell command line in a VM and logs its output; a non-zero exit fails the build unless told otherwise.</summary>
public sealed class ExecLinuxKit : LinuxKitTask
{
    /// <summary>The VM's id (the Id output of StartLinuxKit).</summary>
    public string? Id { get; set; }

    /// <summary>The VM's name, instead of its id.</summary>
    public string? Name { get; set; }

    /// <summary>The command line, run by the guest's /bin/sh.</summary>
    [Required]
    public string Command { get; set; } = "";

    /// <summary>When true a non-zero exit code is logged, not an error.</summary>
    public bool IgnoreExitCode { get; set; }

    /// <summary>The command's exit code.</summary>
    [Output] public int ExitCode { get; private set; }

    /// <summary>The command's standard output, trailing newline removed.</summary>
    [Output] public string? Output { get; private set; }

    /// <summary>The command's standard error, trailing newline removed.</summary>
    [Output] public string? Error { get; private set; }

    /// <inheritdoc />
    private protected override async Task<bool> ExecuteAsync(CancellationToken cancellationToken)
    {
        var vm = RequireVm(Id, Name);
        if (vm is null) return false;
        var manager = CreateManager();
        await using var managerDisposal = manager.ConfigureAwait(false);
        var result = await manager.ExecAsync(vm, ["sh", "-c", Command], cancellationToken).ConfigureAwait(false);
        ExitCode = result.ExitCode;
        Output = result.Stdout.TrimEnd('\n');
        Error = result.Stderr.TrimEnd('\n');
        foreach (var line in result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Log.LogMessage(MessageImportance.Normal, "{0}", line);
        foreach (var line in result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Log.LogMessage(MessageImportance.High, "{0}", line);
        if (result.ExitCode == 0) return true;
        if (IgnoreExitCode)
        {
            Log.LogMessage(MessageImportance.Normal, "LinuxKit: '{0}' exited with {1} in VM {2} (ignored)", Command, result.ExitCode, vm);
            return true;
        }
        Log.LogErrorWithCodeFromResources("ExecLinuxKit.NonZeroExit", Command, result.ExitCode, vm);
        return false;
    }
}
