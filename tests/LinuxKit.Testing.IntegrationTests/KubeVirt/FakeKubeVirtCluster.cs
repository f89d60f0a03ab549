using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.Qemu;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.KubeVirt;
using LinuxKit.Testing.Processes;
using LinuxKit.Testing.State;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;

namespace LinuxKit.Testing.IntegrationTests.KubeVirt;

/// <summary>
/// An in-process stand-in for a Kubernetes API server with KubeVirt, implementing exactly the
/// calls the KubeVirt backend makes: create, get, list (by label) and delete of
/// <c>kubevirt.io/v1</c> VirtualMachineInstances, and the VMI's <c>portforward</c> and
/// <c>console</c> WebSockets (<c>plain.kubevirt.io</c>). A VMI it is given boots for real: its
/// container disk is looked up in a table of local test images and booted with QEMU, its
/// <c>cloudInitNoCloud</c> user-data attached as a NoCloud disk labelled cidata (the guest reads
/// its SSH key from there); port-forward connects to the guest's port, the console streams what
/// the guest's serial console writes from the moment of connection, as KubeVirt's does, and the
/// VMI's virt-launcher pod serves the whole console as the log of its <c>guest-console-log</c>
/// container. Where KubeVirt's behaviour is known the fake follows it, each place citing the
/// source it models. Requests need a bearer token that has not expired: the kubeconfig it writes
/// gets one from an exec credential plugin, as EKS, GKE and AKS kubeconfigs do, and each token
/// lives <see cref="TokenLifetime"/>. Built on HttpListener (WebSockets included), so the test
/// project needs no ASP.NET Core.
/// </summary>
internal sealed class FakeKubeVirtCluster : IAsyncDisposable
{
    public const string Namespace = "linuxkit-tests";
    private const string VmiPath = "/apis/kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances";
    private const string SubresourcePath = "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}";
    private static readonly int[] GuestPorts = [22, 80];

    private readonly HttpListener _listener;
    private readonly IReadOnlyDictionary<string, string> _images;
    private readonly TempDirectory _root = new("lkt-fake-kubevirt-");
    private readonly QemuHypervisor _qemu = new(null, Accelerator.Auto, NullLogger.Instance);
    private readonly ConcurrentDictionary<string, FakeVmi> _vmis = new();
    private readonly ConcurrentDictionary<string, DateTimeOffset> _tokens = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Timer _rotation;
    private Task _serving = Task.CompletedTask;

    private FakeKubeVirtCluster(HttpListener listener, IReadOnlyDictionary<string, string> images, TimeSpan tokenLifetime)
    {
        _listener = listener;
        _images = images;
        TokenLifetime = tokenLifetime;
        Server = listener.Prefixes.Single().TrimEnd('/');
        IssueToken();
        // A new token well before the last one expires, as a credential plugin's issuer does.
        _rotation = new Timer(_ => IssueToken(), null, tokenLifetime / 3, tokenLifetime / 3);
    }

    /// <summary>The kubeconfig that reaches this server (namespace <see cref="Namespace"/>) with the exec credential plugin.</summary>
    public string Kubeconfig => Path.Combine(_root.Path, "kubeconfig");

    /// <summary>The server's address.</summary>
    public string Server { get; }

    /// <summary>How long a token the credential plugin hands out is accepted.</summary>
    public TimeSpan TokenLifetime { get; }

    /// <summary>Tokens accepted so far on a request: more than one once a client has refreshed.</summary>
    public ConcurrentDictionary<string, bool> TokensUsed { get; } = new();

    /// <summary>
    /// Whether virt-launcher pods have the <c>guest-console-log</c> container (KubeVirt's
    /// default since 1.1; a cluster may turn it off with <c>virtualMachineOptions.disableSerialConsoleLog</c>).
    /// </summary>
    public bool SerialConsoleLog { get; set; } = true;

    /// <summary>A kubeconfig for this server with a fixed <paramref name="token"/> instead of the plugin.</summary>
    public string StaticKubeconfig(string token) => KubeconfigWith($"token: {token}");

    // The kubeconfig of this server and namespace, its user's credentials given as YAML lines.
    private string KubeconfigWith(string credentials) => $"""
        apiVersion: v1
        kind: Config
        clusters:
        - name: fake
          cluster:
            server: {Server}
        users:
        - name: tester
          user:
        {string.Concat(credentials.Split('\n').Select(line => $"    {line}\n"))}contexts:
        - name: fake
          context:
            cluster: fake
            user: tester
            namespace: {Namespace}
        current-context: fake
        """;

    private string Credential => Path.Combine(_root.Path, "credential.json");

    private void IssueToken()
    {
        var token = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var expires = DateTimeOffset.UtcNow + TokenLifetime;
        _tokens[token] = expires;
        foreach (var (old, until) in _tokens)
            if (until < DateTimeOffset.UtcNow) _tokens.TryRemove(old, out _);
        // What a credential plugin prints (client.authentication.k8s.io ExecCredential), written
        // whole before it replaces the last: the plugin only prints the file.
        var partial = Credential + ".partial";
        File.WriteAllText(partial, new JsonObject
        {
            ["apiVersion"] = "client.authentication.k8s.io/v1",
            ["kind"] = "ExecCredential",
            ["status"] = new JsonObject
            {
                ["token"] = token,
                ["expirationTimestamp"] = expires.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
            },
        }.ToJsonString());
        File.Move(partial, Credential, overwrite: true);
    }

    // The token of an authorized request, null for one to refuse.
    private string? Authorized(HttpListenerRequest request)
    {
        var header = request.Headers["Authorization"];
        if (header is null || !header.StartsWith("Bearer ", StringComparison.Ordinal)) return null;
        var token = header["Bearer ".Length..];
        if (!_tokens.TryGetValue(token, out var expires) || expires < DateTimeOffset.UtcNow) return null;
        TokensUsed[token] = true;
        return token;
    }

    // Cancelled when the token expires: the fake ends long streams then, standing in for what
    // ends them on a cluster (an idle timeout, a load balancer or API server restart), after
    // which the client must authenticate again.
    private CancellationTokenSource UntilExpiry(string token)
    {
        var left = _tokens.TryGetValue(token, out var expires) ? expires - DateTimeOffset.UtcNow : TimeSpan.Zero;
        return new CancellationTokenSource(left > TimeSpan.Zero ? left : TimeSpan.Zero);
    }

    /// <summary>Requests ("METHOD PATH") that match no call the fake implements: the backend made a call it did not expect.</summary>
    public ConcurrentQueue<string> Unrouted { get; } = new();

    /// <summary>The VMIs that exist, by name.</summary>
    public IReadOnlyDictionary<string, FakeVmi> Vmis => _vmis;

    /// <param name="images">Container disk references and the local test images they stand for.</param>
    /// <param name="tokenLifetime">How long each token is accepted (default 20 s: a VM's life in a test outlasts several).</param>
    public static async Task<FakeKubeVirtCluster> StartAsync(IReadOnlyDictionary<string, string> images, TimeSpan? tokenLifetime = null)
    {
        // HttpListener takes a prefix, not port 0: a free port is found first.
        var address = $"http://127.0.0.1:{FreePort()}/";
        var listener = new HttpListener();
        listener.Prefixes.Add(address);
        listener.Start();
        var cluster = new FakeKubeVirtCluster(listener, images, tokenLifetime ?? TimeSpan.FromSeconds(20));
        cluster._serving = Task.Run(cluster.ServeAsync);
        await File.WriteAllTextAsync(cluster.Kubeconfig, cluster.KubeconfigWith($"""
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: /bin/cat
              args: ["{cluster.Credential}"]
              interactiveMode: Never
            """));
        return cluster;
    }

    private async Task ServeAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    await HandleAsync(context);
                }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or WebSocketException)
                {
                    // The client went away.
                }
                finally
                {
                    try { context.Response.Close(); } catch (ObjectDisposedException) { }
                }
            });
        }
    }

    // The routes: the calls the backend makes, nothing more.
    private static readonly Regex Route = new(
        @"^/apis/(?:kubevirt\.io/v1/namespaces/(?<ns>[^/]+)/virtualmachineinstances(?:/(?<name>[^/]+))?|subresources\.kubevirt\.io/v1/namespaces/(?<sns>[^/]+)/virtualmachineinstances/(?<sname>[^/]+)/(?:portforward/(?<port>\d+)/tcp|(?<console>console)))$",
        RegexOptions.CultureInvariant);

    private static readonly Regex PolicyRoute = new(@"^/apis/networking\.k8s\.io/v1/namespaces/(?<ns>[^/]+)/networkpolicies$", RegexOptions.CultureInvariant);

    /// <summary>NetworkPolicies made, by name. The fake enforces none (its VMs have no pod network): the tests check what was asked for.</summary>
    public ConcurrentDictionary<string, JsonNode> NetworkPolicies { get; } = new();

    private static readonly Regex PodRoute = new(@"^/api/v1/namespaces/(?<ns>[^/]+)/pods(?:/(?<pod>[^/]+)/(?<log>log))?$", RegexOptions.CultureInvariant);

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var path = request.Url!.AbsolutePath;
        if (Authorized(request) is not { } token)
        {
            await WriteAsync(context, 401, Status(401, "Unauthorized", "Unauthorized"));
            return;
        }
        if (PolicyRoute.Match(path) is { Success: true } && request.HttpMethod == "POST")
        {
            var policy = (await JsonNode.ParseAsync(request.InputStream))!;
            NetworkPolicies[policy["metadata"]!["name"]!.GetValue<string>()] = policy;
            await WriteAsync(context, 201, policy);
            return;
        }
        if (PodRoute.Match(path) is { Success: true } pods && request.HttpMethod == "GET")
        {
            if (pods.Groups["log"].Success) await PodLogAsync(context, pods.Groups["ns"].Value, pods.Groups["pod"].Value, token);
            else await WriteAsync(context, 200, Pods(pods.Groups["ns"].Value, request.QueryString["labelSelector"]));
            return;
        }
        var match = Route.Match(path);
        if (!match.Success)
        {
            Unrouted.Enqueue($"{request.HttpMethod} {request.Url.PathAndQuery}");
            await WriteAsync(context, 404, Status(404, "NotFound", $"the server could not find {path}"));
            return;
        }
        if (match.Groups["port"].Success)
        {
            await PortForwardAsync(context, match.Groups["sname"].Value, int.Parse(match.Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture));
            return;
        }
        if (match.Groups["console"].Success)
        {
            await ConsoleAsync(context, match.Groups["sname"].Value, token);
            return;
        }
        var ns = match.Groups["ns"].Value;
        var name = match.Groups["name"].Success ? match.Groups["name"].Value : null;
        switch (request.HttpMethod, name)
        {
            case ("POST", null):
                await CreateAsync(context, ns);
                break;
            case ("GET", null) when request.QueryString["watch"] == "true":
                await WatchAsync(context, ns);
                break;
            case ("GET", null):
                await WriteAsync(context, 200, List(ns, request.QueryString["labelSelector"]));
                break;
            case ("GET", { } one):
                if (!_vmis.TryGetValue(one, out var vmi) || vmi.Namespace != ns)
                {
                    await WriteAsync(context, 404, NotFound(one));
                }
                else if (Interlocked.Increment(ref vmi.Reads) is 1 or 3)
                {
                    // Now and then, as a busy cluster does: API Priority and Fairness turns a
                    // request away with 429 and Retry-After (k8s.io/apiserver
                    // pkg/server/filters/priority-and-fairness.go), and a server under load
                    // answers 503. A VMI's first and third reads get them.
                    context.Response.AddHeader("Retry-After", "1");
                    if (vmi.Reads == 1) await WriteAsync(context, 429, Status(429, "TooManyRequests", "too many requests, please try again later"));
                    else await WriteAsync(context, 503, Status(503, "ServiceUnavailable", "the server is currently unable to handle the request"));
                }
                else
                {
                    await WriteAsync(context, 200, vmi.ToJson());
                }
                break;
            case ("DELETE", { } one):
                await DeleteAsync(context, one);
                break;
            case ("PATCH", { } one) when request.ContentType?.StartsWith("application/json-patch+json", StringComparison.Ordinal) == true:
                await PatchAsync(context, one);
                break;
            default:
                Unrouted.Enqueue($"{request.HttpMethod} {request.Url.PathAndQuery}");
                await WriteAsync(context, 405, Status(405, "MethodNotAllowed", request.HttpMethod));
                break;
        }
    }

    private async Task CreateAsync(HttpListenerContext context, string ns)
    {
        var body = await JsonNode.ParseAsync(context.Request.InputStream) ?? throw new InvalidOperationException("empty body");
        var name = body["metadata"]?["name"]?.GetValue<string>() ?? "";
        if (Admission.Refusal(body) is { } refusal)
        {
            await WriteAsync(context, 422, Status(422, "Invalid", refusal));
            return;
        }
        var vmi = new FakeVmi(name, ns, body);
        if (!_vmis.TryAdd(name, vmi))
        {
            vmi.Dispose();
            await WriteAsync(context, 409, Status(409, "AlreadyExists", $"virtualmachineinstances.kubevirt.io \"{name}\" already exists"));
            return;
        }
        _ = Task.Run(() => BootAsync(vmi));
        await WriteAsync(context, 201, vmi.ToJson());
    }

    private JsonObject List(string ns, string? labelSelector)
    {
        var wanted = (labelSelector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToList();
        var items = _vmis.Values
            .Where(v => v.Namespace == ns)
            .Where(v => wanted.All(w => v.Spec["metadata"]?["labels"]?[w[0]]?.GetValue<string>() == w.ElementAtOrDefault(1)))
            .Select(v => (JsonNode)v.ToJson())
            .ToArray();
        return new JsonObject { ["apiVersion"] = "kubevirt.io/v1", ["kind"] = "VirtualMachineInstanceList", ["items"] = new JsonArray(items) };
    }

    /// <summary>Watches asked for so far.</summary>
    public int Watches;

    /// <summary>Refuse watches with 403, as RBAC does for credentials granted get but not watch.</summary>
    public bool RefuseWatches { get; set; }

    // A watch of VMIs by name (fieldSelector metadata.name=...), as the API server streams one:
    // ADDED for the object as it is, MODIFIED at each change, DELETED when it is gone, one JSON
    // object per line; the server ends it after timeoutSeconds. Each VMI's first watch is turned
    // away with 429 and Retry-After, as API Priority and Fairness does now and then.
    private async Task WatchAsync(HttpListenerContext context, string ns)
    {
        var selector = context.Request.QueryString["fieldSelector"] ?? "";
        if (!selector.StartsWith("metadata.name=", StringComparison.Ordinal))
        {
            Unrouted.Enqueue($"GET {context.Request.Url!.PathAndQuery}");
            await WriteAsync(context, 400, Status(400, "BadRequest", "the fake watches one VMI by name"));
            return;
        }
        var name = selector["metadata.name=".Length..];
        Interlocked.Increment(ref Watches);
        if (RefuseWatches)
        {
            await WriteAsync(context, 403, Status(403, "Forbidden", $"virtualmachineinstances.kubevirt.io is forbidden: User \"tester\" cannot watch resource \"virtualmachineinstances\" in API group \"kubevirt.io\" in the namespace \"{ns}\""));
            return;
        }
        if (_vmis.TryGetValue(name, out var first) && Interlocked.Increment(ref first.WatchRequests) == 1)
        {
            context.Response.AddHeader("Retry-After", "1");
            await WriteAsync(context, 429, Status(429, "TooManyRequests", "too many requests, please try again later"));
            return;
        }
        var timeout = int.TryParse(context.Request.QueryString["timeoutSeconds"], System.Globalization.CultureInfo.InvariantCulture, out var seconds) ? TimeSpan.FromSeconds(seconds) : TimeSpan.FromMinutes(30);
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        context.Response.SendChunked = true;
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        ends.CancelAfter(timeout);
        string? last = null;
        try
        {
            while (true)
            {
                var now = _vmis.TryGetValue(name, out var vmi) && vmi.Namespace == ns ? vmi.ToJson() : null;
                var text = now?.ToJsonString();
                string? type = (last, text) switch
                {
                    (null, not null) => "ADDED",
                    (not null, null) => "DELETED",
                    (not null, not null) when last != text => "MODIFIED",
                    _ => null,
                };
                if (type is not null)
                {
                    var line = new JsonObject { ["type"] = type, ["object"] = now ?? JsonNode.Parse(last!) }.ToJsonString() + "\n";
                    await context.Response.OutputStream.WriteAsync(System.Text.Encoding.UTF8.GetBytes(line), ends.Token);
                    await context.Response.OutputStream.FlushAsync(ends.Token);
                    if (type == "DELETED") return;
                }
                last = text;
                await Task.Delay(100, ends.Token);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>How long a deleted VMI stays listed, terminating, as on a cluster.</summary>
    public static readonly TimeSpan TerminationDelay = TimeSpan.FromSeconds(1.5);

    // Deletion is asynchronous on a cluster: KubeVirt's VMI mutating webhook puts the
    // kubevirt.io/foregroundDeleteVirtualMachine finalizer on every VMI (virt-api,
    // pkg/virt-api/webhooks/mutating-webhook/mutators/vmi-mutator.go), so the API server answers
    // DELETE with the object, now carrying a deletionTimestamp, and keeps listing it until
    // virt-controller has seen the domain gone and removed the finalizer (seconds). A second
    // DELETE meanwhile gets the same answer.
    private async Task DeleteAsync(HttpListenerContext context, string name)
    {
        if (!_vmis.TryGetValue(name, out var vmi))
        {
            await WriteAsync(context, 404, NotFound(name));
            return;
        }
        // DeleteOptions.preconditions.uid: the API server deletes only the object with that uid.
        var options = context.Request.HasEntityBody ? await JsonNode.ParseAsync(context.Request.InputStream) : null;
        if (options?["preconditions"]?["uid"]?.GetValue<string>() is { } uid && uid != vmi.Uid)
        {
            await WriteAsync(context, 409, Status(409, "Conflict", $"Precondition failed: UID in precondition: {uid}, UID in object meta: {vmi.Uid}"));
            return;
        }
        if (vmi.MarkDeleted())
        {
            _ = Task.Run(async () =>
            {
                await vmi.EndAsync(_qemu);
                await Task.Delay(TerminationDelay);
                _vmis.TryRemove(name, out _);
                // The garbage collector: what the VMI owned goes with it.
                foreach (var (policyName, policy) in NetworkPolicies)
                    if (policy["metadata"]?["ownerReferences"]?.AsArray().Any(o => o?["uid"]?.GetValue<string>() == vmi.Uid) == true)
                        NetworkPolicies.TryRemove(policyName, out _);
                vmi.Dispose();
            });
        }
        await WriteAsync(context, 200, vmi.ToJson());
    }

    // virt-api dials the guest before it upgrades the request (pkg/virt-api/rest/streamer.go,
    // Streamer.Handle): a port nothing listens on is an HTTP 500 with a Status body
    // (netDial.DialUnderlying, "dialing VM: ..."), never a WebSocket that closes at once.
    // A JSON patch (RFC 6902) of the VMI's metadata, as the bridge renews its lease: a failed
    // `test` refuses the whole patch with 422, as the API server does.
    private async Task PatchAsync(HttpListenerContext context, string name)
    {
        if (!_vmis.TryGetValue(name, out var vmi))
        {
            await WriteAsync(context, 404, NotFound(name));
            return;
        }
        var operations = (await JsonNode.ParseAsync(context.Request.InputStream))!.AsArray();
        lock (vmi)
        {
            var patched = vmi.Spec.DeepClone();
            foreach (var operation in operations)
            {
                var path = operation!["path"]!.GetValue<string>();
                var segments = path.Split('/').Skip(1).Select(p => p.Replace("~1", "/", StringComparison.Ordinal).Replace("~0", "~", StringComparison.Ordinal)).ToArray();
                if (segments.Length < 2 || segments[0] != "metadata")
                {
                    Unrouted.Enqueue($"PATCH {path}");
                    return;
                }
                var parent = segments[..^1].Aggregate((JsonNode?)patched, (node, key) => node?[key])?.AsObject();
                var value = operation["value"]?.DeepClone();
                var current = parent is null ? null : parent[segments[^1]]?.ToJsonString();
                switch (operation["op"]!.GetValue<string>())
                {
                    case "test" when current != value?.ToJsonString():
                        _ = WriteAsync(context, 422, Status(422, "Invalid", $"the server rejected our request due to an error in our request: testing value {path} failed"));
                        return;
                    case "test":
                        break;
                    case "replace" or "add" when parent is not null:
                        parent[segments[^1]] = value;
                        break;
                    default:
                        _ = WriteAsync(context, 422, Status(422, "Invalid", $"the server rejected our request due to an error in our request: {operation.ToJsonString()}"));
                        return;
                }
            }
            vmi.Spec = patched;
        }
        await WriteAsync(context, 200, vmi.ToJson());
    }

    private async Task PortForwardAsync(HttpListenerContext context, string name, int port)
    {
        if (!_vmis.TryGetValue(name, out var vmi) || vmi.Phase != "Running")
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"Unable to connect to VM because phase is {(vmi?.Phase ?? "unknown")} instead of Running"));
            return;
        }
        using var guest = new TcpClient();
        try
        {
            // A guest port the fake does not forward is a port nothing listens on.
            await guest.ConnectAsync(IPAddress.Loopback, vmi.HostPorts.TryGetValue(port, out var hostPort) ? hostPort : ClosedPort);
        }
        catch (SocketException e)
        {
            await WriteAsync(context, 500, Status(500, "InternalError", $"Internal error occurred: dialing VM: dial tcp 10.244.0.10:{port}: connect: {e.Message.ToLowerInvariant()}"));
            return;
        }
        if (!context.Request.IsWebSocketRequest)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", "websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header"));
            return;
        }
        var socket = (await context.AcceptWebSocketAsync("plain.kubevirt.io")).WebSocket;
        var stream = guest.GetStream();
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmi.Ended);
        var up = WebSocketPipe.CopyToSocketAsync(stream, socket, ends.Token);
        var down = WebSocketPipe.CopyFromSocketAsync(socket, stream, ends.Token);
        await Task.WhenAny(up, down);
        await ends.CancelAsync();
        await Task.WhenAll(up, down);
        await WebSocketPipe.CloseAsync(socket);
    }

    // One serial console per VMI: virt-handler closes the current connection when a new one
    // comes (pkg/virt-handler/rest/console.go, newStopChan), so a client that holds the console
    // takes it from a user's `virtctl console`, and the other way round.
    private async Task ConsoleAsync(HttpListenerContext context, string name, string token)
    {
        if (!_vmis.TryGetValue(name, out var vmi) || vmi.Files is not { } files || !context.Request.IsWebSocketRequest)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"{name} has no console yet"));
            return;
        }
        var socket = (await context.AcceptWebSocketAsync("plain.kubevirt.io")).WebSocket;
        using var expiry = UntilExpiry(token);
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmi.Ended, vmi.TakeConsole(), expiry.Token);
        ConsoleConnections++;
        // A serial console is live: what was written before the connection is not sent.
        var position = new FileInfo(files.ConsoleLog).Length;
        var buffer = new byte[16 * 1024];
        try
        {
            while (!ends.IsCancellationRequested)
            {
                using (var log = new FileStream(files.ConsoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                {
                    log.Position = position;
                    int read;
                    while ((read = await log.ReadAsync(buffer, ends.Token)) > 0)
                    {
                        position += read;
                        await socket.SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary, true, ends.Token);
                    }
                }
                await Task.Delay(50, ends.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException)
        {
        }
        await WebSocketPipe.CloseAsync(socket);
    }

    /// <summary>Serial console WebSockets opened so far.</summary>
    public int ConsoleConnections;

    private const string ConsoleLogContainer = "guest-console-log";

    // virt-launcher pods as the backend finds them: by the kubevirt.io/created-by label, the VMI's
    // uid (pkg/virt-controller/services/template.go).
    private JsonObject Pods(string ns, string? labelSelector)
    {
        var wanted = (labelSelector ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToList();
        var items = _vmis.Values
            .Where(v => v.Namespace == ns)
            .Select(v => v.Pod(SerialConsoleLog))
            .Where(p => wanted.All(w => p["metadata"]?["labels"]?[w[0]]?.GetValue<string>() == w.ElementAtOrDefault(1)))
            .Select(p => (JsonNode)p)
            .ToArray();
        return new JsonObject { ["apiVersion"] = "v1", ["kind"] = "PodList", ["items"] = new JsonArray(items) };
    }

    // The guest-console-log container streams the serial console from the VMI's start
    // (pkg/virt-controller/services/serialconsolelog.go): its log is the whole console so far,
    // followed as the guest writes more. A cluster without it answers as the API server does
    // for a container the pod does not have.
    private async Task PodLogAsync(HttpListenerContext context, string ns, string pod, string token)
    {
        var vmi = _vmis.Values.FirstOrDefault(v => v.Namespace == ns && v.PodName == pod);
        var container = context.Request.QueryString["container"];
        if (vmi is null)
        {
            await WriteAsync(context, 404, Status(404, "NotFound", $"pods \"{pod}\" not found"));
            return;
        }
        if (container != ConsoleLogContainer || !SerialConsoleLog)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"container {container} is not valid for pod {pod}"));
            return;
        }
        if (vmi.Files is not { } files)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"container \"{container}\" in pod \"{pod}\" is waiting to start: PodInitializing"));
            return;
        }
        var follow = context.Request.QueryString["follow"] == "true";
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/plain";
        context.Response.SendChunked = true;
        using var expiry = UntilExpiry(token);
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmi.Ended, expiry.Token);
        PodLogStreams++;
        var buffer = new byte[16 * 1024];
        long position = 0;
        try
        {
            do
            {
                await using (var log = new FileStream(files.ConsoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
                {
                    log.Position = position;
                    int read;
                    while ((read = await log.ReadAsync(buffer, ends.Token)) > 0)
                    {
                        position += read;
                        await context.Response.OutputStream.WriteAsync(buffer.AsMemory(0, read), ends.Token);
                        await context.Response.OutputStream.FlushAsync(ends.Token);
                    }
                }
                if (follow) await Task.Delay(50, ends.Token);
            }
            while (follow);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Pod log streams opened so far.</summary>
    public int PodLogStreams;

    // A loopback port nothing listens on.
    private static readonly int ClosedPort = FreePort();

    private static async Task WriteAsync(HttpListenerContext context, int status, JsonNode body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        var bytes = System.Text.Encoding.UTF8.GetBytes(body.ToJsonString());
        context.Response.ContentLength64 = bytes.Length;
        await context.Response.OutputStream.WriteAsync(bytes);
    }

    private async Task BootAsync(FakeVmi vmi)
    {
        try
        {
            var reference = vmi.Spec["spec"]!["volumes"]!.AsArray().Select(v => v?["containerDisk"]?["image"]?.GetValue<string>()).FirstOrDefault(i => i is not null);
            if (reference is null || !_images.TryGetValue(reference, out var imagePath))
            {
                // As on a cluster: the VMI stays Scheduling, its launcher pod's pull error in a
                // Synchronized=False condition, ErrImagePull and then ImagePullBackOff
                // (virt-controller, pkg/virt-controller/watch/vmi.go).
                vmi.Condition("Synchronized", "ErrImagePull", $"Failed to pull image \"{reference}\": not found");
                await Task.Delay(TimeSpan.FromSeconds(1), vmi.Ended).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (!vmi.Ended.IsCancellationRequested) vmi.Condition("Synchronized", "ImagePullBackOff", $"Back-off pulling image \"{reference}\"");
                return;
            }
            var userData = Convert.FromBase64String(vmi.Spec["spec"]!["volumes"]!.AsArray()
                .Select(v => v?["cloudInitNoCloud"]?["userDataBase64"]?.GetValue<string>()).First(u => u is not null)!);
            var domain = vmi.Spec["spec"]!["domain"]!;
            var memory = int.Parse(domain["resources"]!["requests"]!["memory"]!.GetValue<string>().TrimEnd('i', 'M'), System.Globalization.CultureInfo.InvariantCulture);
            var cpus = domain["cpu"]!["cores"]!.GetValue<int>();

            var files = new VmFiles(vmi.Name[^8..], Path.Combine(_root.Path, vmi.Name));
            PrivateFiles.CreateFolder(files.Directory);
            await File.WriteAllBytesAsync(files.MetadataIso, MetadataIso.Build([("user-data", userData)], DateTime.UtcNow, volumeId: "cidata"));
            var image = LinuxKitImage.Resolve(imagePath);
            var bootDisk = await _qemu.PrepareBootDiskAsync(image, files, CancellationToken.None);
            foreach (var port in GuestPorts) vmi.HostPorts[port] = FreePort();
            var spec = VmSpec.Of(files, image, bootDisk, new RunOptions { Memory = memory, Cpus = cpus }) with
            {
                SshPort = vmi.HostPorts[22],
                Ports = [.. GuestPorts.Where(p => p != 22).Select(p => new PortForward(vmi.HostPorts[p], p))],
            };
            vmi.Files = files;
            vmi.Process = await _qemu.StartAsync(spec, CancellationToken.None);
            vmi.Phase = "Running";
        }
        catch (Exception e) when (e is LinuxKitException or IOException)
        {
            vmi.Fail(e.Message);
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static JsonObject NotFound(string name) => Status(404, "NotFound", $"virtualmachineinstances.kubevirt.io \"{name}\" not found");

    private static JsonObject Status(int code, string reason, string message) =>
        new() { ["kind"] = "Status", ["apiVersion"] = "v1", ["status"] = "Failure", ["reason"] = reason, ["code"] = code, ["message"] = message };

    public async ValueTask DisposeAsync()
    {
        await _rotation.DisposeAsync();
        foreach (var vmi in _vmis.Values)
        {
            await vmi.EndAsync(_qemu);
            vmi.Dispose();
        }
        _vmis.Clear();
        await _stop.CancelAsync();
        _listener.Close();
        await _serving;
        _stop.Dispose();
        _root.Dispose();
    }
}

/// <summary>A VMI the fake holds: its manifest, its phase, and the QEMU that runs it.</summary>
internal sealed class FakeVmi(string name, string ns, JsonNode spec) : IDisposable
{
    private readonly CancellationTokenSource _ended = new();

    public string Name { get; } = name;
    public string Namespace { get; } = ns;
    public JsonNode Spec { get; set; } = spec;
    public string Uid { get; } = Guid.NewGuid().ToString();

    /// <summary>Its virt-launcher pod's name (virt-launcher-NAME-xxxxx, as the pod's generateName gives).</summary>
    public string PodName { get; } = $"virt-launcher-{name}-{Guid.NewGuid().ToString("N")[..5]}";

    private CancellationTokenSource? _console;

    /// <summary>Ends the console connection that holds the console (if one does) and gives a token that ends with the new one.</summary>
    public CancellationToken TakeConsole()
    {
        var mine = new CancellationTokenSource();
        var previous = Interlocked.Exchange(ref _console, mine);
        previous?.Cancel();
        return mine.Token;
    }

    /// <summary>The virt-launcher pod, with the guest-console-log container when the cluster has it.</summary>
    public JsonObject Pod(bool serialConsoleLog)
    {
        var containers = new JsonArray(new JsonObject { ["name"] = "compute" });
        if (serialConsoleLog) containers.Add(new JsonObject { ["name"] = "guest-console-log" });
        return new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Pod",
            ["metadata"] = new JsonObject
            {
                ["name"] = PodName,
                ["namespace"] = Namespace,
                ["labels"] = new JsonObject { ["kubevirt.io"] = "virt-launcher", ["kubevirt.io/created-by"] = Uid },
            },
            ["spec"] = new JsonObject { ["containers"] = containers },
            ["status"] = new JsonObject { ["phase"] = Files is null ? "Pending" : "Running" },
        };
    }
    public string Phase { get; set; } = "Scheduling";
    public string? Reason { get; private set; }
    public ConcurrentDictionary<int, int> HostPorts { get; } = new();
    public VmFiles? Files { get; set; }
    public ProcessIdentity? Process { get; set; }
    public CancellationToken Ended => _ended.Token;

    /// <summary>GETs of this VMI so far (the fake turns some away, see its GET route).</summary>
    public int Reads;

    /// <summary>Watches of this VMI so far (the fake turns the first away).</summary>
    public int WatchRequests;

    public DateTimeOffset? DeletedAt { get; private set; }

    /// <summary>Gives the VMI its deletionTimestamp; false when it had one already.</summary>
    public bool MarkDeleted()
    {
        lock (_ended)
        {
            if (DeletedAt is not null) return false;
            DeletedAt = DateTimeOffset.UtcNow;
            return true;
        }
    }

    private readonly ConcurrentDictionary<string, JsonObject> _conditions = new();

    /// <summary>Sets a False condition of <paramref name="type"/>, the phase unchanged.</summary>
    public void Condition(string type, string reason, string message) =>
        _conditions[type] = new JsonObject { ["type"] = type, ["status"] = "False", ["reason"] = reason, ["message"] = message };

    public void Fail(string reason)
    {
        Reason = reason;
        Phase = "Failed";
    }

    public JsonObject ToJson()
    {
        var json = Spec.DeepClone().AsObject();
        var conditions = new JsonArray();
        if (Reason is not null) conditions.Add(new JsonObject { ["type"] = "Ready", ["status"] = "False", ["message"] = Reason });
        foreach (var condition in _conditions.Values) conditions.Add(condition.DeepClone());
        json["status"] = new JsonObject { ["phase"] = Phase, ["conditions"] = conditions };
        var metadata = json["metadata"]!.AsObject();
        metadata["uid"] = Uid;
        metadata["finalizers"] = new JsonArray("kubevirt.io/foregroundDeleteVirtualMachine");
        if (DeletedAt is { } deleted) metadata["deletionTimestamp"] = deleted.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        return json;
    }

    private int _ending;
    private int _disposed;

    // Once: a deleted VMI is ended by its deletion, and again by the fake's own disposal.
    public async Task EndAsync(QemuHypervisor qemu)
    {
        if (Interlocked.Exchange(ref _ending, 1) == 1) return;
        await _ended.CancelAsync();
        if (Process is { } process && Files is { } files) await qemu.StopAsync(files, process, StopMode.Fast, TimeSpan.FromSeconds(5), CancellationToken.None);
        Phase = "Succeeded";
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _ended.Dispose();
    }
}

/// <summary>
/// What the API server and KubeVirt's VMI admission webhook refuse at create: names and labels
/// Kubernetes does not take (apimachinery's validation), and inline cloud-init user-data over
/// 2048 bytes (pkg/virt-api/webhooks/validating-webhook/admitters/vmi-create-admitter.go,
/// cloudInitUserMaxLen).
/// </summary>
internal static class Admission
{
    private static readonly Regex Subdomain = new(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant);
    private static readonly Regex LabelName = new(@"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$", RegexOptions.CultureInvariant);
    private static readonly Regex LabelValue = new(@"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$", RegexOptions.CultureInvariant);
    private const int UserDataLimit = 2048;

    /// <summary>The API server's message refusing <paramref name="vmi"/>; null when it is admitted.</summary>
    public static string? Refusal(JsonNode vmi)
    {
        var name = vmi["metadata"]?["name"]?.GetValue<string>() ?? "";
        if (name.Length is 0 or > 253 || !Subdomain.IsMatch(name))
            return $"VirtualMachineInstance.kubevirt.io \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
        foreach (var (key, value) in vmi["metadata"]?["labels"]?.AsObject() ?? [])
        {
            var text = value?.GetValue<string>() ?? "";
            var keyName = key.Split('/').Last();
            if (keyName.Length > 63 || !LabelName.IsMatch(keyName))
                return $"VirtualMachineInstance.kubevirt.io \"{name}\" is invalid: metadata.labels: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.'";
            if (text.Length > 63 || !LabelValue.IsMatch(text))
                return $"VirtualMachineInstance.kubevirt.io \"{name}\" is invalid: metadata.labels: Invalid value: \"{text}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
        }
        var volumes = vmi["spec"]?["volumes"]?.AsArray() ?? [];
        for (var i = 0; i < volumes.Count; i++)
        {
            if (volumes[i]?["cloudInitNoCloud"]?["userDataBase64"]?.GetValue<string>() is not { } encoded) continue;
            var length = Convert.FromBase64String(encoded).Length;
            if (length > UserDataLimit)
                return $"admission webhook \"virtualmachineinstances-create-validator.kubevirt.io\" denied the request: spec.volumes[{i}].cloudInitNoCloud userdata exceeds {UserDataLimit} byte limit. Should use UserDataSecretRef for larger data.";
        }
        return null;
    }
}
