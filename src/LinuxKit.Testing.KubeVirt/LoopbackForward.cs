using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// A host port on 127.0.0.1 whose every connection is carried to a guest port through its own
/// port-forward WebSocket, as <c>virtctl port-forward</c> does: the SDK's SSH client, and the
/// user's forwarded ports, see a local port as with QEMU's user network.
/// </summary>
internal sealed class LoopbackForward : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<CancellationToken, Task<WebSocket>> _connect;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private LoopbackForward(TcpListener listener, Func<CancellationToken, Task<WebSocket>> connect)
    {
        _listener = listener;
        _connect = connect;
        _accepting = Task.Run(AcceptAsync);
    }

    /// <exception cref="BridgeException">The port is taken.</exception>
    public static LoopbackForward Listen(int hostPort, Func<CancellationToken, Task<WebSocket>> connect)
    {
        var listener = new TcpListener(IPAddress.Loopback, hostPort);
        try
        {
            listener.Start();
        }
        catch (SocketException e)
        {
            throw new BridgeException($"Port {hostPort} on 127.0.0.1 cannot be opened: {e.Message}.");
        }
        return new LoopbackForward(listener, connect);
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => CarryAsync(client));
        }
    }

    private async Task CarryAsync(TcpClient client)
    {
        using (client)
        {
            WebSocket socket;
            try
            {
                socket = await _connect(_stop.Token);
            }
            catch (Exception e) when (e is BridgeException or WebSocketException or OperationCanceledException or HttpRequestException)
            {
                // The local client sees its connection close, as with a guest port nothing listens on.
                await Console.Error.WriteLineAsync($"port-forward: {e.Message}");
                return;
            }
            using (socket)
            {
                var stream = client.GetStream();
                using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                var up = WebSocketPipe.CopyToSocketAsync(stream, socket, ends.Token);
                var down = WebSocketPipe.CopyFromSocketAsync(socket, stream, ends.Token);
                await Task.WhenAny(up, down);
                // One direction ended: the connection is over for both.
                await ends.CancelAsync();
                await Task.WhenAll(up, down);
                await WebSocketPipe.CloseAsync(socket);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}

/// <summary>Bytes between a stream and a KubeVirt subresource WebSocket (binary messages of raw bytes).</summary>
internal static class WebSocketPipe
{
    public static async Task CopyToSocketAsync(Stream from, WebSocket to, CancellationToken cancellationToken)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            int read;
            while ((read = await from.ReadAsync(buffer, cancellationToken)) > 0)
                await to.SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary, endOfMessage: true, cancellationToken);
        }
        catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public static async Task CopyFromSocketAsync(WebSocket from, Stream to, CancellationToken cancellationToken)
    {
        var buffer = new byte[32 * 1024];
        try
        {
            while (true)
            {
                var received = await from.ReceiveAsync(buffer.AsMemory(), cancellationToken);
                if (received.MessageType == WebSocketMessageType.Close) return;
                await to.WriteAsync(buffer.AsMemory(0, received.Count), cancellationToken);
                await to.FlushAsync(cancellationToken);
            }
        }
        catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public static async Task CloseAsync(WebSocket socket)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        using var budget = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, budget.Token);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}
