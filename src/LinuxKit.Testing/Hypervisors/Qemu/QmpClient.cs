using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>
/// A minimal client for QEMU's machine protocol (QMP): one JSON object per line, a greeting,
/// capability negotiation, then commands whose replies may be preceded by events.
/// </summary>
internal sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;
    private readonly NetworkStream _stream;

    private QmpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<QmpClient> ConnectAsync(string socketPath, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken).ConfigureAwait(false);
            var client = new QmpClient(socket);
            await client.ReadMessageAsync(cancellationToken).ConfigureAwait(false); // greeting
            await client.ExecuteAsync("qmp_capabilities", cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs a command and returns its "return" value; a QMP error becomes an exception.</summary>
    public Task<JsonNode?> ExecuteAsync(string command, CancellationToken cancellationToken) =>
        ExecuteAsync(command, arguments: null, cancellationToken);

    /// <summary>Runs a command with arguments and returns its "return" value; a QMP error becomes an exception.</summary>
    public async Task<JsonNode?> ExecuteAsync(string command, JsonObject? arguments, CancellationToken cancellationToken)
    {
        var request = new JsonObject { ["execute"] = command };
        if (arguments is not null) request["arguments"] = arguments;
        await _stream.WriteAsync(Encoding.UTF8.GetBytes(request.ToJsonString() + "\n"), cancellationToken).ConfigureAwait(false);
        while (true)
        {
            var message = await ReadMessageAsync(cancellationToken).ConfigureAwait(false);
            if (message["event"] is not null) continue;
            if (message["error"] is { } error)
                throw new LinuxKitException($"QEMU refused '{command}': {error["desc"]?.GetValue<string>() ?? error.ToJsonString()}");
            return message["return"];
        }
    }

    private async Task<JsonNode> ReadMessageAsync(CancellationToken cancellationToken)
    {
        var line = await _reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new LinuxKitException("QEMU closed its control socket.");
        return JsonNode.Parse(line) ?? throw new LinuxKitException($"QEMU sent an empty QMP message: {line}");
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
