using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using k8s;
using k8s.Autorest;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// The cluster calls the bridge makes: VMIs through KubernetesClient's generic custom-object
/// operations, and the VMI's subresources (port-forward, serial console) as WebSockets through
/// the library's own plumbing (see <see cref="KubeVirtClient"/>), with the same credentials.
/// </summary>
internal sealed class KubeVirtApi : IDisposable
{
    private readonly KubeVirtClient _client;

    private KubeVirtApi(KubernetesClientConfiguration config, string ns)
    {
        _client = KubeVirtClient.Create(config);
        Namespace = ns;
    }

    public string Namespace { get; }

    public static KubeVirtApi Connect(BridgeArguments args)
    {
        var kubeconfig = args.Required("--kubeconfig");
        KubernetesClientConfiguration config;
        try
        {
            config = Kubeconfig.Load(kubeconfig, args.Optional("--context"));
        }
        catch (Exception e) when (e is k8s.Exceptions.KubeConfigException or IOException or ArgumentException)
        {
            throw new BridgeException($"The kubeconfig '{kubeconfig}' cannot be used: {e.Message}");
        }
        return new KubeVirtApi(config, args.Optional("--namespace") ?? config.Namespace ?? "default");
    }

    /// <summary>Creates the VMI and returns its uid.</summary>
    public async Task<string> CreateAsync(JsonObject vmi, CancellationToken cancellationToken)
    {
        using var body = JsonDocument.Parse(vmi.ToJsonString());
        var created = await CallAsync(
            "create the VMI",
            () => _client.CustomObjects.CreateNamespacedCustomObjectAsync(body.RootElement, VmiManifest.Group, VmiManifest.Version, Namespace, VmiManifest.Plural, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return ToNode(created)?["metadata"]?["uid"]?.GetValue<string>() ?? throw new BridgeException("The cluster made the VMI but gave it no uid.");
    }

    /// <summary>Creates a NetworkPolicy (see <see cref="VmiManifest.Isolation"/>).</summary>
    public async Task CreateNetworkPolicyAsync(JsonObject policy, CancellationToken cancellationToken)
    {
        var model = k8s.KubernetesJson.Deserialize<k8s.Models.V1NetworkPolicy>(policy.ToJsonString());
        await CallAsync(
            "create the VMI's NetworkPolicy",
            () => _client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(model, Namespace, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>The container of a virt-launcher pod that streams the serial console from the VMI's start.</summary>
    public const string ConsoleLogContainer = "guest-console-log";

    /// <summary>
    /// The virt-launcher pod of the VMI with <paramref name="uid"/> (KubeVirt labels it
    /// <c>kubevirt.io/created-by</c>), and whether it has the <see cref="ConsoleLogContainer"/>;
    /// null while there is none.
    /// </summary>
    public async Task<(string Name, bool HasConsoleLog)?> LauncherPodAsync(string uid, CancellationToken cancellationToken)
    {
        var pods = await CallAsync(
            "list the VMI's virt-launcher pod",
            () => _client.CoreV1.ListNamespacedPodAsync(Namespace, labelSelector: $"kubevirt.io/created-by={uid}", cancellationToken: cancellationToken)).ConfigureAwait(false);
        var pod = pods.Items.FirstOrDefault(p => p.Metadata.DeletionTimestamp is null);
        if (pod is null) return null;
        return (pod.Metadata.Name, pod.Spec.Containers.Any(c => c.Name == ConsoleLogContainer));
    }

    /// <summary>The serial console from the VMI's start, followed: the log of <paramref name="pod"/>'s <see cref="ConsoleLogContainer"/>.</summary>
    public Task<Stream> ConsoleLogAsync(string pod, CancellationToken cancellationToken) =>
        CallAsync(
            "read the VMI's serial console log",
            () => _client.CoreV1.ReadNamespacedPodLogAsync(pod, Namespace, container: ConsoleLogContainer, follow: true, cancellationToken: cancellationToken));

    /// <summary>The VMI's status (phase, and the reason when it failed); null when there is no such VMI.</summary>
    public async Task<VmiStatus?> StatusAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var vmi = await _client.CustomObjects.GetNamespacedCustomObjectAsync(VmiManifest.Group, VmiManifest.Version, Namespace, VmiManifest.Plural, name, cancellationToken).ConfigureAwait(false);
            return VmiStatus.Of(ToNode(vmi));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw TimedOut("read the VMI"); // the HTTP client's own timeout, not the caller's stop
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (HttpOperationException e)
        {
            throw Refused("read the VMI", e);
        }
        catch (HttpRequestException e)
        {
            throw Unreachable("read the VMI", e);
        }
        catch (k8s.Exceptions.KubeConfigException e)
        {
            throw CredentialsFailed("read the VMI", e);
        }
    }

    /// <summary>
    /// Deletes the VMI; one that is already gone is no error. With <paramref name="uid"/>, only
    /// that VMI: one made since under the same name is left alone (a 409 said as an error).
    /// </summary>
    public async Task DeleteAsync(string name, string? uid, CancellationToken cancellationToken)
    {
        try
        {
            var options = uid is null ? null : new k8s.Models.V1DeleteOptions { Preconditions = new k8s.Models.V1Preconditions { Uid = uid } };
            await _client.CustomObjects.DeleteNamespacedCustomObjectAsync(VmiManifest.Group, VmiManifest.Version, Namespace, VmiManifest.Plural, name, body: options, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }
        catch (HttpOperationException e)
        {
            throw Refused("delete the VMI", e);
        }
        catch (HttpRequestException e)
        {
            throw Unreachable("delete the VMI", e);
        }
        catch (k8s.Exceptions.KubeConfigException e)
        {
            throw CredentialsFailed("delete the VMI", e);
        }
    }

    /// <summary>Moves the VMI's expiry to <paramref name="expiresAt"/> if it still carries <paramref name="ownerToken"/>.</summary>
    public async Task RenewAsync(string name, string ownerToken, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        var patch = new k8s.Models.V1Patch(VmiManifest.Renewal(ownerToken, expiresAt).ToJsonString(), k8s.Models.V1Patch.PatchType.JsonPatch);
        await CallAsync(
            "renew the VMI's lease",
            () => _client.CustomObjects.PatchNamespacedCustomObjectAsync(patch, VmiManifest.Group, VmiManifest.Version, Namespace, VmiManifest.Plural, name, cancellationToken: cancellationToken)).ConfigureAwait(false);
    }

    /// <summary>
    /// The VMI's status each time it changes, from a watch the server ends after
    /// <paramref name="serverTimeout"/>; null when the VMI is deleted.
    /// </summary>
    public async IAsyncEnumerable<VmiStatus?> WatchAsync(string name, TimeSpan serverTimeout, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var path = $"apis/{VmiManifest.Group}/{VmiManifest.Version}/namespaces/{Uri.EscapeDataString(Namespace)}/{VmiManifest.Plural}" +
                   $"?watch=true&fieldSelector={Uri.EscapeDataString($"metadata.name={name}")}&timeoutSeconds={(int)serverTimeout.TotalSeconds}";
        var events = _client.WatchAsync(path, cancellationToken).GetAsyncEnumerator(cancellationToken);
        await using (events.ConfigureAwait(false))
        {
            while (true)
            {
                JsonNode watchEvent;
                try
                {
                    if (!await events.MoveNextAsync().ConfigureAwait(false)) yield break;
                    watchEvent = events.Current;
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw TimedOut("watch the VMI");
                }
                catch (HttpOperationException e)
                {
                    throw Refused("watch the VMI", e);
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    throw new BridgeException($"Cannot watch the VMI: the cluster's API server did not answer ({e.Message}).") { Transient = true };
                }
                catch (k8s.Exceptions.KubeConfigException e)
                {
                    throw CredentialsFailed("watch the VMI", e);
                }
                switch (watchEvent["type"]?.GetValue<string>())
                {
                    case "DELETED":
                        yield return null;
                        yield break;
                    case "ADDED" or "MODIFIED":
                        yield return VmiStatus.Of(watchEvent["object"]);
                        break;
                    default:
                        // ERROR (a Status: the watch is too old, the server restarts): watched again.
                        yield break;
                }
            }
        }
    }

    /// <summary>The SDK's VMIs in the namespace (by the managed-by label).</summary>
    public async Task<IReadOnlyList<JsonNode>> ListAsync(CancellationToken cancellationToken)
    {
        var list = await CallAsync(
            "list the VMIs",
            () => _client.CustomObjects.ListNamespacedCustomObjectAsync(VmiManifest.Group, VmiManifest.Version, Namespace, VmiManifest.Plural, labelSelector: VmiManifest.Selector, cancellationToken: cancellationToken)).ConfigureAwait(false);
        return ToNode(list)?["items"]?.AsArray().Where(i => i is not null).Select(i => i!).ToList() ?? [];
    }

    /// <summary>A WebSocket to the VMI's port-forward subresource for guest TCP port <paramref name="port"/>.</summary>
    public Task<WebSocket> PortForwardAsync(string name, int port, CancellationToken cancellationToken) =>
        SubresourceAsync(name, $"portforward/{port.ToString(System.Globalization.CultureInfo.InvariantCulture)}/tcp", cancellationToken);

    /// <summary>A WebSocket to the VMI's serial console.</summary>
    public Task<WebSocket> ConsoleAsync(string name, CancellationToken cancellationToken) =>
        SubresourceAsync(name, "console", cancellationToken);

    private async Task<WebSocket> SubresourceAsync(string name, string subresource, CancellationToken cancellationToken)
    {
        var what = $"the VMI's {subresource.Split('/')[0]} subresource";
        try
        {
            return await _client.ConnectSubresourceAsync(
                $"apis/subresources.kubevirt.io/v1/namespaces/{Uri.EscapeDataString(Namespace)}/virtualmachineinstances/{Uri.EscapeDataString(name)}/{subresource}",
                cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException e)
        {
            // virt-api dials the guest before it upgrades: nothing listening is a Status here.
            throw Refused($"connect to {what}", e);
        }
        catch (Exception e) when (e is WebSocketException or HttpRequestException or System.Security.Authentication.AuthenticationException)
        {
            throw new BridgeException($"Cannot connect to {what}: {e.Message}") { Transient = true };
        }
        catch (k8s.Exceptions.KubeConfigException e)
        {
            throw CredentialsFailed($"connect to {what}", e);
        }
    }

    private static async Task<T> CallAsync<T>(string what, Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (HttpOperationException e)
        {
            throw Refused(what, e);
        }
        catch (HttpRequestException e)
        {
            throw Unreachable(what, e);
        }
        catch (k8s.Exceptions.KubeConfigException e)
        {
            throw CredentialsFailed(what, e);
        }
    }

    // A credential plugin that fails (or times out) now may work on the next call: the user logs in again.
    private static BridgeException CredentialsFailed(string what, k8s.Exceptions.KubeConfigException e) =>
        new($"Cannot {what}: the kubeconfig's credentials could not be had ({e.Message}).") { Transient = true };

    private static BridgeException Unreachable(string what, HttpRequestException e) =>
        new($"Cannot {what}: the cluster's API server did not answer ({e.Message}).") { Transient = true };

    private static BridgeException TimedOut(string what) =>
        new($"Cannot {what}: the cluster's API server did not answer within the client's timeout.") { Transient = true };

    private static BridgeException Refused(string what, HttpOperationException e)
    {
        var status = e.Response.Content;
        string? message = null;
        try
        {
            message = JsonNode.Parse(status)?["message"]?.GetValue<string>();
        }
        catch (JsonException)
        {
        }
        var hint = e.Response.StatusCode == HttpStatusCode.NotFound && what == "create the VMI"
            ? " Is KubeVirt installed on the cluster (the kubevirt.io/v1 API)?"
            : "";
        var code = (int)e.Response.StatusCode;
        return new BridgeException($"The cluster refused to {what}: {code} {message ?? status}.{hint}") { Transient = code == 429 || code >= 500, StatusCode = code };
    }

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        JsonElement element => JsonNode.Parse(element.GetRawText()),
        _ => JsonSerializer.SerializeToNode(value),
    };

    public void Dispose() => _client.Dispose();
}

/// <summary>
/// A VMI's phase, why when it ended, and why it cannot start when the cluster says so while it is
/// still Scheduling: a pull error never makes a VMI Failed (virt-controller copies the launcher
/// pod's waiting reason into a <c>Synchronized=False</c> condition, and the scheduler's verdict
/// into <c>PodScheduled=False</c>; pkg/virt-controller/watch/vmi.go).
/// </summary>
internal sealed record VmiStatus(string Phase, string? Reason)
{
    // Reasons a pod's image will not come however long one waits (kubelet's image manager).
    private static readonly string[] PullFailures = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"];

    public bool IsRunning => Phase == "Running";
    public bool HasEnded => Phase is "Failed" or "Succeeded";

    /// <summary>The cluster's reason and message when the VMI's image cannot be pulled; null otherwise.</summary>
    public string? CannotStart { get; init; }

    /// <summary>Why the VMI is not scheduled yet (the scheduler's message), which may change: for the timeout's message.</summary>
    public string? Unscheduled { get; init; }

    public static VmiStatus Of(JsonNode? vmi)
    {
        var status = vmi?["status"];
        var phase = status?["phase"]?.GetValue<string>() ?? "Pending";
        var conditions = status?["conditions"]?.AsArray().OfType<JsonNode>().ToList() ?? [];
        var reasons = conditions
            .Select(c => Text(c, "message") ?? Text(c, "reason"))
            .Where(m => !string.IsNullOrEmpty(m))
            .ToList();
        static string? Text(JsonNode condition, string field) => condition[field]?.GetValue<string>();
        static string Said(JsonNode condition) => $"{Text(condition, "reason")}: {Text(condition, "message")}";
        var pull = conditions.FirstOrDefault(c => Text(c, "status") == "False" && PullFailures.Contains(Text(c, "reason")));
        var unscheduled = conditions.FirstOrDefault(c => Text(c, "type") == "PodScheduled" && Text(c, "status") == "False");
        return new VmiStatus(phase, reasons is { Count: > 0 } ? string.Join("; ", reasons) : null)
        {
            CannotStart = pull is null ? null : Said(pull),
            Unscheduled = unscheduled is null ? null : Said(unscheduled),
        };
    }
}

/// <summary>A failure the bridge reports on stderr as its reason for exiting.</summary>
internal sealed class BridgeException(string message) : Exception(message)
{
    /// <summary>
    /// The API server did not answer, was overloaded (429) or failed (5xx), or the client's own
    /// timeout passed: worth asking again; no VM ends for it.
    /// </summary>
    public bool Transient { get; init; }

    /// <summary>The HTTP status the cluster answered with, when it answered.</summary>
    public int? StatusCode { get; init; }
}
