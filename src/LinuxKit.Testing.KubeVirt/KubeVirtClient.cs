using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using k8s;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// KubernetesClient with the one call it lacks: a WebSocket to a VMI subresource, made by the
/// library's own stream-connect plumbing. So every WebSocket takes its credentials as each API
/// call does (an exec plugin's or OIDC token refreshed by the token provider, a token file
/// read again, client certificates), and a refused upgrade comes back with the server's Status.
/// Server certificates are judged by <see cref="ServerCertificateCheck"/> on both paths.
/// </summary>
internal sealed class KubeVirtClient : Kubernetes
{
    // KubeVirt's subresource WebSockets carry raw bytes in binary messages under this protocol.
    private const string PlainProtocol = "plain.kubevirt.io";

    private readonly string? _tlsServerName;

    private KubeVirtClient(KubernetesClientConfiguration config)
        : base(config)
    {
        _tlsServerName = config.TlsServerName is { Length: > 0 } name ? name : null;
    }

    /// <summary>The client for <paramref name="config"/>, whose server certificate checks it takes over.</summary>
    public static KubeVirtClient Create(KubernetesClientConfiguration config)
    {
        var check = new ServerCertificateCheck(config.SslCaCerts, config.TlsServerName is { Length: > 0 } name ? name : new Uri(config.Host).Host);
        if (!config.SkipTlsVerify && new Uri(config.Host).Scheme == Uri.UriSchemeHttps)
        {
            // Without its CA the library leaves the handler's validation alone: it is ours to set.
            config.SslCaCerts = null;
            config.FirstMessageHandlerSetup = handler => handler.SslOptions.RemoteCertificateValidationCallback = check.Validate;
        }
        var client = new KubeVirtClient(config);
        client.CreateWebSocketBuilder = () => new CheckedWebSocketBuilder(config.SkipTlsVerify ? null : check);
        return client;
    }

    /// <summary>A WebSocket to the relative <paramref name="path"/> (below the server's address) under the <c>plain.kubevirt.io</c> protocol.</summary>
    /// <exception cref="k8s.Autorest.HttpOperationException">The server answered with an error instead of the upgrade (its Status in the response).</exception>
    public async Task<WebSocket> ConnectSubresourceAsync(string path, CancellationToken cancellationToken)
    {
        var address = Address(path);
        var builder = new UriBuilder(address);
        builder.Scheme = builder.Scheme == Uri.UriSchemeHttps ? "wss" : "ws";
        try
        {
            return await StreamConnectAsync(builder.Uri, PlainProtocol, null, cancellationToken).ConfigureAwait(false);
        }
        catch (WebSocketException e) when (e.WebSocketErrorCode == WebSocketError.NotAWebSocket)
        {
            // An answer other than the upgrade (virt-api's Status when it cannot dial the guest):
            // the WebSocket client keeps no body, so the same request is made once more as a
            // plain GET, with credentials, to read it.
            throw await RefusalAsync(address, e, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<Exception> RefusalAsync(Uri address, WebSocketException refused, CancellationToken cancellationToken)
    {
        using var response = await GetAsync(address, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        return response.IsSuccessStatusCode ? refused : await ErrorAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The events of a watch (<c>?watch=true</c>) at the relative <paramref name="path"/>, one JSON
    /// object each (<c>type</c>, <c>object</c>), until the server ends the watch.
    /// </summary>
    /// <exception cref="k8s.Autorest.HttpOperationException">The server refused the watch.</exception>
    public async IAsyncEnumerable<JsonNode> WatchAsync(string path, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await GetAsync(Address(path), HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) throw await ErrorAsync(response, cancellationToken).ConfigureAwait(false);
        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
                if (line.Length > 0 && JsonNode.Parse(line) is { } watchEvent) yield return watchEvent;
        }
    }

    // Relative to the whole server address: a proxy may serve the cluster below a path.
    private Uri Address(string path) => new(new Uri(BaseUri.ToString().TrimEnd('/') + "/"), path);

    // A GET with the credentials and Host the library's own calls carry.
    private async Task<HttpResponseMessage> GetAsync(Uri address, HttpCompletionOption completion, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, address);
        if (Credentials is not null) await Credentials.ProcessHttpRequestAsync(request, cancellationToken).ConfigureAwait(false);
        if (_tlsServerName is not null) request.Headers.Host = _tlsServerName;
        return await HttpClient.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<k8s.Autorest.HttpOperationException> ErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var content = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        return new k8s.Autorest.HttpOperationException($"The server answered {(int)response.StatusCode}")
        {
            Response = new k8s.Autorest.HttpResponseMessageWrapper(response, content),
        };
    }

    private sealed class CheckedWebSocketBuilder(ServerCertificateCheck? check) : WebSocketBuilder
    {
        public override Task<WebSocket> BuildAndConnectAsync(Uri uri, CancellationToken cancellationToken)
        {
            // Set last: the library sets its own CA check on the builder before connecting.
            if (check is not null) Options.RemoteCertificateValidationCallback = check.Validate;
            return base.BuildAndConnectAsync(uri, cancellationToken);
        }
    }
}
