using System.Net.WebSockets;
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

    private KubeVirtClient(KubernetesClientConfiguration config)
        : base(config)
    {
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
        // Relative to the whole server address: a proxy may serve the cluster below a path.
        var address = new Uri(new Uri(BaseUri.ToString().TrimEnd('/') + "/"), path);
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
        using var request = new HttpRequestMessage(HttpMethod.Get, address);
        if (Credentials is not null) await Credentials.ProcessHttpRequestAsync(request, cancellationToken).ConfigureAwait(false);
        using var response = await HttpClient.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode) return refused;
        var content = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        return new k8s.Autorest.HttpOperationException($"The server refused the upgrade: {(int)response.StatusCode}", refused)
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
