namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// Appends the VMI's serial console to the VM's console log, as QEMU writes its own: every
/// reader of the log (readiness, fail-fast, wait strategies, the tool's logs) works unchanged.
/// The console comes from the log of the virt-launcher pod's <c>guest-console-log</c>
/// container: all of it from the first byte the guest wrote, and the VMI's one interactive
/// console stays free for a user's <c>virtctl console</c> (virt-handler closes the current
/// console connection when a new one comes). Only on a cluster without that container (turned
/// off, KubeVirt before 1.1) or without the right to read pod logs is the live console used,
/// from the moment it connects. Each piece is appended at the file's end as it is then: the SDK
/// rotates the log by copying and truncating it.
/// </summary>
internal static class ConsoleCopy
{
    private static readonly TimeSpan Retry = TimeSpan.FromSeconds(1);

    public static async Task RunAsync(KubeVirtApi api, string vmi, string uid, string consoleLog, CancellationToken cancellationToken)
    {
        if (!await FromPodLogAsync(api, uid, consoleLog, cancellationToken))
            await LiveAsync(api, vmi, consoleLog, cancellationToken);
    }

    // False when the cluster cannot give the console as a pod log: the caller falls back.
    private static async Task<bool> FromPodLogAsync(KubeVirtApi api, string uid, string consoleLog, CancellationToken cancellationToken)
    {
        // Bytes of the log copied so far: a stream that breaks (an idle timeout, an API server
        // restart, credentials to renew) is opened again from the start and this much skipped.
        long copied = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var pod = await api.LauncherPodAsync(uid, cancellationToken);
                if (pod is { HasConsoleLog: false })
                {
                    await Console.Error.WriteLineAsync($"console: pod {pod.Value.Name} has no {KubeVirtApi.ConsoleLogContainer} container; copying the live console, from now on");
                    return false;
                }
                if (pod is { } found)
                {
                    var log = await api.ConsoleLogAsync(found.Name, cancellationToken);
                    await using (log)
                    {
                        copied = await AppendAsync(log, consoleLog, copied, cancellationToken);
                    }
                }
            }
            catch (BridgeException e) when (e.StatusCode == 403)
            {
                await Console.Error.WriteLineAsync($"console: {e.Message} Copying the live console, from now on (grant get on pods/log to keep the whole console).");
                return false;
            }
            catch (BridgeException e)
            {
                // Not started yet, or the server away for a moment: asked again.
                await Console.Error.WriteLineAsync($"console: {e.Message}");
            }
            if (!await PauseAsync(cancellationToken)) break;
        }
        return true;
    }

    private static async Task LiveAsync(KubeVirtApi api, string vmi, string consoleLog, CancellationToken cancellationToken)
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
            if (!await PauseAsync(cancellationToken)) return;
        }
    }

    private static async Task<bool> PauseAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Retry, cancellationToken);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    // Appends what the stream gives past its first `skip` bytes; returns the bytes read in all.
    private static async Task<long> AppendAsync(Stream from, string consoleLog, long skip, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        long position = 0;
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, cancellationToken)) > 0)
            {
                var start = (int)Math.Clamp(skip - position, 0, read);
                position += read;
                if (start < read) await WriteAsync(consoleLog, buffer.AsMemory(start, read - start), cancellationToken);
            }
        }
        catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
        {
        }
        return Math.Max(position, skip);
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
                await WriteAsync(consoleLog, buffer.AsMemory(0, received.Count), cancellationToken);
            }
        }
        catch (Exception e) when (e is IOException or System.Net.WebSockets.WebSocketException or OperationCanceledException)
        {
        }
    }

    private static async Task WriteAsync(string consoleLog, ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        var log = new FileStream(consoleLog, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        await using (log)
        {
            await log.WriteAsync(bytes, cancellationToken);
        }
    }
}
