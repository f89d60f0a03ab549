using System.CommandLine;
using LinuxKit.Testing.Hypervisors;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Tool;

/// <summary>The options every command shares, and the manager they configure.</summary>
internal sealed class ToolContext(Option<string?> stateDir, Option<bool> verbose, Option<HypervisorKind> hypervisor)
{
    /// <summary>A manager over the state directory the command line names, logging to <paramref name="log"/>.</summary>
    public LinuxKitManager Manager(ParseResult parsed, ILogger? log = null) => new(Options(parsed, log));

    public LinuxKitManagerOptions Options(ParseResult parsed, ILogger? log = null) => new()
    {
        StateDirectory = parsed.GetValue(stateDir),
        Hypervisor = parsed.GetValue(hypervisor),
        Logger = log,
    };

    /// <summary>Progress on stderr: a spinner on a terminal, plain lines when redirected.</summary>
    public ProgressLog Progress(ParseResult parsed) => new(Console.Error, ProgressLog.IsTerminal, parsed.GetValue(verbose));

    /// <summary>
    /// Runs <paramref name="action"/>, turning the SDK's errors into a message on stderr and
    /// <see cref="ExitCodes.Failed"/>, and Ctrl-C into <see cref="ExitCodes.Interrupted"/>.
    /// </summary>
    public static async Task<int> GuardAsync(Func<Task<int>> action, CancellationToken cancellationToken)
    {
        try
        {
            return await action();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Console.Error.WriteLine("linuxkit-testing: interrupted");
            return ExitCodes.Interrupted;
        }
        catch (LinuxKitException e)
        {
            Console.Error.WriteLine($"linuxkit-testing: {e.Message}");
            return ExitCodes.Failed;
        }
    }
}
