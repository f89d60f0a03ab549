using LinuxKit.Testing.Processes;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Hypervisors;

/// <summary>
/// The end of every stop: the hypervisor's own first step (a power-off request, a quit), then
/// SIGTERM, then SIGKILL, each with a bounded wait. Returns the VM's exit code.
/// </summary>
internal static class StopEscalation
{

    /// <param name="firstStep">Sends the hypervisor's request; false when it could not be sent.</param>
    /// <param name="firstStepExitCode">The exit code when the VM ended after the request.</param>
    /// <param name="firstStepWait">How long the VM may take to end after the request.</param>
    /// <param name="process">The hypervisor process.</param>
    /// <param name="logger">Where a stop that needed signals is reported.</param>
    /// <param name="cancellationToken">Cancels the waits (never the signals already sent).</param>
    public static async Task<int> RunAsync(
        Func<CancellationToken, Task<bool>> firstStep,
        int firstStepExitCode,
        TimeSpan firstStepWait,
        ProcessIdentity process,
        ILogger logger,
        CancellationToken cancellationToken)
    {
        bool sent;
        using (var budget = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            budget.CancelAfter(TimeLimits.StopRequest);
            try
            {
                sent = await firstStep(budget.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                sent = false;
            }
        }
        if (sent && await process.WaitForExitAsync(firstStepWait, cancellationToken).ConfigureAwait(false)) return firstStepExitCode;

        logger.LogWarning(
            "Hypervisor process {Pid} did not end within {Seconds:0.#} s of the stop request; terminating it",
            process.Pid, sent ? firstStepWait.TotalSeconds : TimeLimits.StopRequest.TotalSeconds);
        process.Signal(UnixSignal.Term);
        if (await process.WaitForExitAsync(TimeLimits.StopSignal, cancellationToken).ConfigureAwait(false)) return 128 + (int)UnixSignal.Term;
        process.Signal(UnixSignal.Kill);
        await process.WaitForExitAsync(TimeLimits.StopSignal, cancellationToken).ConfigureAwait(false);
        return 128 + (int)UnixSignal.Kill;
    }
}
