namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// Appends the VMI's serial console to the VM's console log, as QEMU writes its own: every
/// reader of the log (readiness, fail-fast, wait strategies, the tool's logs) works unchanged.
/// A console connection that drops is opened again while the bridge runs. Each piece is appended
/// at the file's end as it is then: the SDK rotates the log by copying and truncating it.
/// </summary>
internal static class ConsoleCopy
{
    public static async Task RunAsync(KubeVirtApi api, string vmi, string consoleLog, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                using var socket = await api.ConsoleAsync(vmi, cancellationToken);
                await CopyAsync(socket, consoleLog, cancellationToken);
                await WebSocketPipe.CloseAsync(socket);
            }
            catch (BridgeException e)
            {
                await Console.Error.WriteLineAsync($"console: {e.Message}");
            }
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static async Task CopyAsync(System.Net.WebSockets.WebSocket socket, string consoleLog, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer.AsMemory(), cancellationToken);
                if (received.MessageType == System.Net.WebSockets.WebSocketMessageType.Close) return;
                var log = new FileStream(consoleLog, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
                await using (log)
                {
                    await log.WriteAsync(buffer.AsMemory(0, received.Count), cancellationToken);
                }
            }
        }
        catch (Exception e) when (e is IOException or System.Net.WebSockets.WebSocketException or OperationCanceledException)
        {
        }
    }
}
