using System.Diagnostics;
using Microsoft.Build.Framework;
using Microsoft.Extensions.Logging;
using MSBuildTask = Microsoft.Build.Utilities.Task;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// What the LinuxKit tasks share: a manager on the state directory (so a later task or a later
/// build finds the VM), cancellation (Ctrl-C), and errors with codes.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "MSBuild may call Cancel at any time, also after Execute; a source without timers needs no disposal.")]
public abstract class LinuxKitTask : MSBuildTask, ICancelableTask
{
    private readonly CancellationTokenSource _cancel = new();

    /// <summary>The state directory (default: LINUXKIT_TESTING_HOME, else the per-user folder).</summary>
    public string? StateDirectory { get; set; }

    /// <summary>Stops waiting; a VM being booted is stopped.</summary>
    public void Cancel() => _cancel.Cancel();

    /// <inheritdoc />
    public override bool Execute()
    {
        try
        {
            return ExecuteAsync(_cancel.Token).GetAwaiter().GetResult() && !Log.HasLoggedErrors;
        }
        catch (OperationCanceledException)
        {
            Log.LogError(null, "LKT005", null, null, 0, 0, 0, 0, "{0} was cancelled.", GetType().Name);
            return false;
        }
        catch (LinuxKitBootException e)
        {
            Log.LogError(null, "LKT002", null, null, 0, 0, 0, 0, "{0}", e.Message);
            return false;
        }
        catch (LinuxKitException e)
        {
            Log.LogError(null, "LKT001", null, null, 0, 0, 0, 0, "{0}", e.Message);
            return false;
        }
    }

    /// <summary>The task's work.</summary>
    protected abstract Task<bool> ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>A manager on the task's state directory, logging to the build log.</summary>
    protected LinuxKitManager CreateManager() =>
        new(new LinuxKitManagerOptions { StateDirectory = StateDirectory, Logger = new BuildLogger(this) });

    /// <summary>Id or Name, whichever is set; an error when neither is.</summary>
    protected string? RequireVm(string? id, string? name)
    {
        var vm = !string.IsNullOrEmpty(id) ? id : name;
        if (string.IsNullOrEmpty(vm))
            Log.LogError(null, "LKT006", null, null, 0, 0, 0, 0, "{0} needs Id or Name: the Id output of StartLinuxKit, or the Name given to it.", GetType().Name);
        return vm;
    }

    private sealed class BuildLogger(LinuxKitTask task) : Microsoft.Extensions.Logging.ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var message = formatter(state, exception);
            switch (logLevel)
            {
                case >= LogLevel.Error:
                    break; // the task reports failures itself, with a code
                case LogLevel.Warning:
                    task.Log.LogWarning(null, "LKT010", null, null, 0, 0, 0, 0, "{0}", message);
                    break;
                case LogLevel.Information:
                    task.Log.LogMessage(MessageImportance.Normal, "LinuxKit: {0}", message);
                    break;
                default:
                    task.Log.LogMessage(MessageImportance.Low, "LinuxKit: {0}", message);
                    break;
            }
        }
    }

    /// <summary>Seconds since <paramref name="clock"/> started, for log lines.</summary>
    protected static string Seconds(Stopwatch clock) => clock.Elapsed.TotalSeconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
}
