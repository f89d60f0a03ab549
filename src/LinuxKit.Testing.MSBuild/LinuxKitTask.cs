using System.Diagnostics;
using System.Resources;
using Microsoft.Build.Framework;
using Microsoft.Extensions.Logging;
using MSBuildTask = Microsoft.Build.Utilities.Task;

namespace LinuxKit.Testing.MSBuild;

/// <summary>
/// What the LinuxKit tasks share: a manager on the state directory (so a later task or a later
/// build finds the VM), cancellation (Ctrl-C), and errors with codes (see the README's table).
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "MSBuild may call Cancel at any time, also after Execute; a source without timers needs no disposal.")]
public abstract class LinuxKitTask : MSBuildTask, ICancelableTask
{
    private static readonly ResourceManager Messages = new("LinuxKit.Testing.MSBuild.Strings", typeof(LinuxKitTask).Assembly);

    private readonly CancellationTokenSource _cancel = new();

    /// <summary>Creates the task with its messages (errors and warnings come from the assembly's resources).</summary>
    private protected LinuxKitTask()
        : base(Messages)
    {
    }

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
            Log.LogErrorWithCodeFromResources("Task.Cancelled", GetType().Name);
            return false;
        }
        catch (LinuxKitBootException e)
        {
            Log.LogErrorWithCodeFromResources("Task.BootFailed", e.Message);
            return false;
        }
        catch (LinuxKitException e)
        {
            Log.LogErrorWithCodeFromResources("Task.Failed", e.Message);
            return false;
        }
    }

    /// <summary>The task's work.</summary>
    private protected abstract Task<bool> ExecuteAsync(CancellationToken cancellationToken);

    /// <summary>Logs LKT001: a parameter of this task is invalid; <paramref name="reason"/> names it.</summary>
    private protected void LogInvalidParameter(string reason) => Log.LogErrorWithCodeFromResources("Task.InvalidParameter", GetType().Name, reason);

    /// <summary>A manager on the task's state directory, logging to the build log while this task runs.</summary>
    private protected LinuxKitManager CreateManager(LinuxKitManagerOptions? options = null) =>
        CreateManager(options, new BuildLog { Task = this });

    internal LinuxKitManager CreateManager(LinuxKitManagerOptions? options, BuildLog log) =>
        new((options ?? new LinuxKitManagerOptions()) with { StateDirectory = StateDirectory, Logger = log });

    /// <summary>Id or Name, whichever is set; an error when neither is.</summary>
    private protected string? RequireVm(string? id, string? name)
    {
        var vm = !string.IsNullOrEmpty(id) ? id : name;
        if (string.IsNullOrEmpty(vm)) Log.LogErrorWithCodeFromResources("Task.NeedsVm", GetType().Name);
        return vm;
    }

    /// <summary>
    /// The manager's log lines in the build log of the task that is running: a manager can
    /// outlive the task that made it (a VM tied to the build), and a task that ended must not
    /// be logged to.
    /// </summary>
    internal sealed class BuildLog : Microsoft.Extensions.Logging.ILogger
    {
        public LinuxKitTask? Task { get; set; }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug && Task is not null;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (Task is not { } task) return;
            var message = formatter(state, exception);
            switch (logLevel)
            {
                case >= LogLevel.Error:
                    break; // the task reports failures itself, with a code
                case LogLevel.Warning:
                    task.Log.LogWarningWithCodeFromResources("Task.ManagerWarning", message);
                    break;
                case LogLevel.Information:
                    task.Log.LogMessage(eventId == LogEvents.Notice ? MessageImportance.High : MessageImportance.Normal, "LinuxKit: {0}", message);
                    break;
                default:
                    task.Log.LogMessage(MessageImportance.Low, "LinuxKit: {0}", message);
                    break;
            }
        }
    }

    /// <summary>Seconds since <paramref name="clock"/> started, for log lines.</summary>
    private protected static string Seconds(Stopwatch clock) => clock.Elapsed.TotalSeconds.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture);
}
