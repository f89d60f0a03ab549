using DotNet.Testcontainers.Containers;
using Microsoft.Extensions.Logging;

namespace LinuxKit.Testing.Testcontainers;

/// <summary>
/// How a <see cref="LinuxKitContainer"/> starts: the boot and then Testcontainers' wait
/// strategies in order, all within the start-up timeout; a start that fails, times out or is
/// cancelled stops the VM it booted (its console stays readable until disposal).
/// </summary>
internal sealed class StartupSequence(LinuxKitConfiguration configuration, LinuxKitManager manager, ILogger logger)
{
    /// <param name="container">What the wait strategies inspect.</param>
    /// <param name="booted">Told of the VM as soon as it answers, before the wait strategies run.</param>
    /// <param name="cancellationToken">The caller's token; the start-up timeout is added to it.</param>
    /// <exception cref="TimeoutException">The start-up timeout passed (the message carries the console's last lines).</exception>
    public async Task<Container> RunAsync(IContainer container, Func<Container, CancellationToken, Task> booted, CancellationToken cancellationToken)
    {
        using var startup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        startup.CancelAfter(configuration.StartupTimeout);
        Container? vm = null;
        try
        {
            var consumer = configuration.OutputConsumer;
            var options = configuration.Options with { ConsoleOutput = consumer is { Enabled: true } ? consumer.Stdout : null };
            vm = await manager.RunAsync(configuration.Image!, options, startup.Token).ConfigureAwait(false);
            await booted(vm, startup.Token).ConfigureAwait(false);
            var strategies = configuration.WaitStrategies.SelectMany(w => w.Build()).ToList();
            var id = vm.Id;
            await WaitStrategyRunner.RunAsync(container, strategies, () => IsRunning(id), what => DiedDuringAsync(id, what), startup.Token).ConfigureAwait(false);
            return vm;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await AbandonAsync(vm).ConfigureAwait(false);
            var console = vm is null ? "" : await manager.ReadConsoleTailAsync(vm.Id, cancellationToken: CancellationToken.None).ConfigureAwait(false);
            throw new TimeoutException($"VM {vm?.Id} from '{configuration.Image}' did not start within {configuration.StartupTimeout} (WithStartupTimeout).\nLast console lines:\n{console}");
        }
        catch
        {
            await AbandonAsync(vm).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Whether the VM runs (not paused, stopped or dead).</summary>
    public bool IsRunning(string id) => manager.Inspect(id).Status == ContainerStatus.Running;

    private async Task<Exception> DiedDuringAsync(string id, string what)
    {
        var vm = manager.Inspect(id);
        var console = await manager.ReadConsoleTailAsync(id).ConfigureAwait(false);
        return new ContainerNotRunningException(vm.Id, $"The VM stopped during its {what}. Last console lines:\n{console}", "", vm.ExitCode ?? -1, null);
    }

    private async Task AbandonAsync(Container? vm)
    {
        if (vm is null) return;
        try
        {
            await manager.StopAsync(vm.Id, CancellationToken.None).ConfigureAwait(false);
        }
        catch (LinuxKitException e)
        {
            logger.LogWarning("Could not stop VM {Id} after its failed start: {Reason}", vm.Id, e.Message);
        }
    }
}
