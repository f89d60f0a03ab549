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
/// the guest's serial console writes from the moment of connection, as KubeVirt's does.
/// Requests need the bearer token of the kubeconfig it writes. Built on HttpListener (WebSockets
/// included), so the test project needs no ASP.NET Core.
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
    private readonly string _token = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
    private readonly CancellationTokenSource _stop = new();
    private Task _serving = Task.CompletedTask;

    private FakeKubeVirtCluster(HttpListener listener, IReadOnlyDictionary<string, string> images)
    {
        _listener = listener;
        _images = images;
    }

    /// <summary>The kubeconfig that reaches this server (namespace <see cref="Namespace"/>).</summary>
    public string Kubeconfig => Path.Combine(_root.Path, "kubeconfig");

    /// <summary>Requests ("METHOD PATH") that match no call the fake implements: the backend made a call it did not expect.</summary>
    public ConcurrentQueue<string> Unrouted { get; } = new();

    /// <summary>The VMIs that exist, by name.</summary>
    public IReadOnlyDictionary<string, FakeVmi> Vmis => _vmis;

    /// <param name="images">Container disk references and the local test images they stand for.</param>
    public static async Task<FakeKubeVirtCluster> StartAsync(IReadOnlyDictionary<string, string> images)
    {
        // HttpListener takes a prefix, not port 0: a free port is found first.
        var address = $"http://127.0.0.1:{FreePort()}/";
        var listener = new HttpListener();
        listener.Prefixes.Add(address);
        listener.Start();
        var cluster = new FakeKubeVirtCluster(listener, images);
        cluster._serving = Task.Run(cluster.ServeAsync);
        await File.WriteAllTextAsync(cluster.Kubeconfig, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {address.TrimEnd('/')}
            users:
            - name: tester
              user:
                token: {cluster._token}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: tester
                namespace: {Namespace}
            current-context: fake
            """);
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

    private async Task HandleAsync(HttpListenerContext context)
    {
        var request = context.Request;
        var path = request.Url!.AbsolutePath;
        if (request.Headers["Authorization"] != $"Bearer {_token}")
        {
            await WriteAsync(context, 401, Status(401, "Unauthorized", "Unauthorized"));
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
            await ConsoleAsync(context, match.Groups["sname"].Value);
            return;
        }
        var ns = match.Groups["ns"].Value;
        var name = match.Groups["name"].Success ? match.Groups["name"].Value : null;
        switch (request.HttpMethod, name)
        {
            case ("POST", null):
                await CreateAsync(context, ns);
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
        if (vmi.MarkDeleted())
        {
            _ = Task.Run(async () =>
            {
                await vmi.EndAsync(_qemu);
                await Task.Delay(TerminationDelay);
                _vmis.TryRemove(name, out _);
                vmi.Dispose();
            });
        }
        await WriteAsync(context, 200, vmi.ToJson());
    }

    private async Task PortForwardAsync(HttpListenerContext context, string name, int port)
    {
        if (!_vmis.TryGetValue(name, out var vmi) || !vmi.HostPorts.TryGetValue(port, out var hostPort) || !context.Request.IsWebSocketRequest)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"no port {port} on {name}"));
            return;
        }
        var socket = (await context.AcceptWebSocketAsync("plain.kubevirt.io")).WebSocket;
        using var guest = new TcpClient();
        try
        {
            await guest.ConnectAsync(IPAddress.Loopback, hostPort);
        }
        catch (SocketException)
        {
            await socket.CloseAsync(WebSocketCloseStatus.InternalServerError, "guest port unreachable", CancellationToken.None);
            return;
        }
        var stream = guest.GetStream();
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmi.Ended);
        var up = WebSocketPipe.CopyToSocketAsync(stream, socket, ends.Token);
        var down = WebSocketPipe.CopyFromSocketAsync(socket, stream, ends.Token);
        await Task.WhenAny(up, down);
        await ends.CancelAsync();
        await Task.WhenAll(up, down);
        await WebSocketPipe.CloseAsync(socket);
    }

    private async Task ConsoleAsync(HttpListenerContext context, string name)
    {
        if (!_vmis.TryGetValue(name, out var vmi) || vmi.Files is not { } files || !context.Request.IsWebSocketRequest)
        {
            await WriteAsync(context, 400, Status(400, "BadRequest", $"{name} has no console yet"));
            return;
        }
        var socket = (await context.AcceptWebSocketAsync("plain.kubevirt.io")).WebSocket;
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, vmi.Ended);
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
    public JsonNode Spec { get; } = spec;
    public string Phase { get; set; } = "Scheduling";
    public string? Reason { get; private set; }
    public ConcurrentDictionary<int, int> HostPorts { get; } = new();
    public VmFiles? Files { get; set; }
    public ProcessIdentity? Process { get; set; }
    public CancellationToken Ended => _ended.Token;

    /// <summary>GETs of this VMI so far (the fake turns some away, see its GET route).</summary>
    public int Reads;

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
