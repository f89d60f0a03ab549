using System.Text;
using System.Text.Json.Nodes;
using k8s;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.KubeVirt;

namespace LinuxKit.Testing.IntegrationTests.KubeVirt;

/// <summary>
/// The cluster the KubeVirt tests run against: the fake (see <see cref="FakeKubeVirtCluster"/>),
/// whose VMIs boot the test images with local QEMU; or, when LINUXKIT_TESTING_KUBEVIRT_KUBECONFIG
/// names one, a real cluster with KubeVirt, whose container disks
/// LINUXKIT_TESTING_KUBEVIRT_DISK_DROPBEAR and LINUXKIT_TESTING_KUBEVIRT_DISK_OPENSSH name (README:
/// "Running the KubeVirt tests against a real cluster"). The tests of what only a fake can stage
/// (a refused token, an image that cannot be pulled) always use the fake.
/// </summary>
public sealed class KubeVirtClusterFixture : IAsyncLifetime
{
    private const string RealKubeconfig = "LINUXKIT_TESTING_KUBEVIRT_KUBECONFIG";

    internal FakeKubeVirtCluster Fake { get; private set; } = null!;

    /// <summary>True when the tests run against a real cluster.</summary>
    public static bool IsReal => Environment.GetEnvironmentVariable(RealKubeconfig) is { Length: > 0 };

    /// <summary>The kubeconfig of the cluster under test.</summary>
    public string Kubeconfig => Environment.GetEnvironmentVariable(RealKubeconfig) is { Length: > 0 } real ? real : Fake.Kubeconfig;

    /// <summary>The container disk holding <paramref name="guest"/>'s test image on the cluster under test.</summary>
    public static string ContainerDisk(string guest) => IsReal
        ? Environment.GetEnvironmentVariable($"LINUXKIT_TESTING_KUBEVIRT_DISK_{guest.ToUpperInvariant()}") ?? throw new InvalidOperationException($"Set LINUXKIT_TESTING_KUBEVIRT_DISK_{guest.ToUpperInvariant()} to the container disk of the {guest} test image.")
        : FakeContainerDisk(guest);

    /// <summary>The container disk that stands for <paramref name="guest"/>'s test image on the fake.</summary>
    public static string FakeContainerDisk(string guest) => $"containerdisk:registry.test/linuxkit-ssh:{guest}";

    /// <summary>
    /// The SDK's VMIs on the cluster under test that are not being deleted, by name: a deleted
    /// VMI stays listed with a deletionTimestamp for seconds (see the fake's DeleteAsync).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, JsonNode>> VmisAsync() =>
        (await AllVmisAsync()).Where(v => v.Value["metadata"]?["deletionTimestamp"] is null).ToDictionary();

    /// <summary>
    /// Waits until the cluster no longer lists <paramref name="name"/> at all, terminating or not:
    /// a cluster removes a deleted VMI once KubeVirt's finalizer has run (seconds on the fake, up
    /// to a couple of minutes on a busy cluster).
    /// </summary>
    public async Task AssertRemovedAsync(string name)
    {
        var limit = IsReal ? TimeSpan.FromMinutes(2) : TimeSpan.FromSeconds(15);
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while ((await AllVmisAsync()).ContainsKey(name))
        {
            Assert.True(waited.Elapsed < limit, $"VMI {name} was still listed {limit.TotalSeconds:0} s after its deletion");
            await Task.Delay(250);
        }
    }

    private async Task<IReadOnlyDictionary<string, JsonNode>> AllVmisAsync()
    {
        if (!IsReal) return Fake.Vmis.Values.ToDictionary(v => v.Name, v => (JsonNode)v.ToJson());
        var config = k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(Kubeconfig);
        using var client = new k8s.Kubernetes(config);
        var list = await client.CustomObjects.ListNamespacedCustomObjectAsync(
            "kubevirt.io", "v1", Environment.GetEnvironmentVariable("LINUXKIT_TESTING_KUBE_NAMESPACE") ?? config.Namespace ?? "default", "virtualmachineinstances",
            labelSelector: "app.kubernetes.io/managed-by=linuxkit-testing");
        var items = JsonNode.Parse(((System.Text.Json.JsonElement)list).GetRawText())!["items"]!.AsArray();
        return items.ToDictionary(i => i!["metadata"]!["name"]!.GetValue<string>(), i => i!);
    }

    public async Task InitializeAsync() =>
        Fake = await FakeKubeVirtCluster.StartAsync(new Dictionary<string, string>
        {
            ["registry.test/linuxkit-ssh:dropbear"] = TestEnvironment.GuestImage("dropbear"),
            ["registry.test/linuxkit-ssh:openssh"] = TestEnvironment.GuestImage("openssh"),
        });

    public async Task DisposeAsync() => await Fake.DisposeAsync();
}

/// <summary>
/// The KubeVirt backend's whole lifecycle against the fake cluster (see
/// <see cref="FakeKubeVirtCluster"/>): the backend's own bridge program makes the VMI, waits
/// for it, carries SSH and a forwarded port through port-forward WebSockets, copies the serial
/// console, and deletes the VMI on a stop, a dead owner, or a prune.
/// </summary>
[Trait("Category", "Integration")]
public sealed class KubeVirtBackendTests(KubeVirtClusterFixture cluster) : IClassFixture<KubeVirtClusterFixture>, IAsyncDisposable
{
    private readonly ScratchState _state = new();

    public async ValueTask DisposeAsync() => await _state.DisposeAsync();

    private LinuxKitManager Manager(KubeVirtOptions? options = null) => new(new LinuxKitManagerOptions
    {
        StateDirectory = _state.Path,
        Hypervisor = HypervisorKind.KubeVirt,
        KubeVirt = options ?? new KubeVirtOptions { Kubeconfig = cluster.Kubeconfig },
    });

    private static RunOptions Small => ScratchManager.Small;

    // Writes a marker on the guest's serial console and waits up to 20 s for it in the VM's console log.
    private static async Task AssertReachesConsoleLogAsync(LinuxKitManager manager, Container vm, string marker, string failure)
    {
        await manager.ExecAsync(vm.Id, ["sh", "-c", $"echo {marker} > /dev/console"]);
        Assert.True(
            await Polling.UntilAsync(() => File.ReadAllText(vm.ConsoleLog).Contains(marker, StringComparison.Ordinal), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(20), CancellationToken.None),
            failure);
    }

    // Where the bridge says what it did (its stderr), beside the console log.
    private static string HypervisorLog(Container vm) => Path.Combine(Path.GetDirectoryName(vm.ConsoleLog)!, "hypervisor.log");


    [Theory]
    [MemberData(nameof(TestEnvironment.Guests), MemberType = typeof(TestEnvironment))]
    public async Task A_vm_boots_from_its_container_disk_with_its_key_from_cloud_init_and_is_used_and_stopped_like_a_local_one(string guest)
    {
        await using var manager = Manager();
        var vm = await manager.RunAsync(KubeVirtClusterFixture.ContainerDisk(guest), Small with { Ports = [new PortMapping(0, 80)] });

        var (name, vmi) = Assert.Single(await cluster.VmisAsync());
        Assert.Equal($"linuxkit-testing-{vm.Id}", name);
        var labels = vmi["metadata"]!["labels"]!;
        Assert.Equal(vm.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), labels["linuxkit-testing/owner-pid"]!.GetValue<string>());
        Assert.NotNull(vmi["metadata"]!["annotations"]!["linuxkit-testing/expires-at"]);
        // The key the SDK made is in the VMI's user-data, the only metadata the guest was given:
        // the SSH session proves the guest read it from the cidata disk.
        var userData = Encoding.UTF8.GetString(Convert.FromBase64String(
            vmi["spec"]!["volumes"]!.AsArray().Select(v => v?["cloudInitNoCloud"]?["userDataBase64"]?.GetValue<string>()).Single(u => u is not null)!));

        Assert.Equal("Linux\n", (await manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);
        await manager.WriteFileAsync(vm.Id, "/tmp/through-the-cluster", new MemoryStream("over port-forward"u8.ToArray()), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Assert.Equal("over port-forward", Encoding.UTF8.GetString(await manager.ReadFileAsync(vm.Id, "/tmp/through-the-cluster")));
        var givenKey = JsonNode.Parse(userData)!["ssh"]!["entries"]!["authorized_keys"]!["content"]!.GetValue<string>();
        Assert.Equal(givenKey, (await manager.ExecAsync(vm.Id, ["cat", "/root/.ssh/authorized_keys"])).Stdout);
        Assert.Contains("Hello from LinuxKit", await TestEnvironment.GetWhenServedAsync(vm.Ports.Single().Key), StringComparison.Ordinal);

        await AssertReachesConsoleLogAsync(manager, vm, "marker-on-the-serial-console", "the serial console never reached the console log");

        await manager.StopAsync(vm.Id);
        Assert.Empty(await cluster.VmisAsync());
        await cluster.AssertRemovedAsync(name);
        Assert.Equal(ContainerStatus.Stopped, (await manager.InspectAsync(vm.Id)).Status);
        Assert.False(TestEnvironment.IsRunning(vm.Pid), "the bridge outlived its VM");
        Assert.Empty(cluster.Fake.Unrouted); // the backend made no call the fake does not implement
    }

    [Fact]
    public async Task The_testcontainers_builder_runs_a_vm_on_the_cluster_with_its_wait_strategies_unchanged()
    {
        var container = new LinuxKit.Testing.Testcontainers.LinuxKitBuilder()
            .WithImage(KubeVirtClusterFixture.ContainerDisk("openssh"))
            .WithMemory(256)
            .WithPortBinding(80, assignRandomHostPort: true)
            .WithStateDirectory(_state.Path)
            .WithHypervisor(HypervisorKind.KubeVirt)
            .WithManagerOptions(m => m with { KubeVirt = new KubeVirtOptions { Kubeconfig = cluster.Kubeconfig } })
            .WithWaitStrategy(DotNet.Testcontainers.Builders.Wait.ForUnixContainer()
                .UntilCommandIsCompleted("test -s /root/.ssh/authorized_keys")
                .UntilHttpRequestIsSucceeded(request => request.ForPort(80).ForPath("/index.html")))
            .Build();
        await using (container)
        {
            await container.StartAsync();
            var result = await container.ExecAsync(["cat", "/www/index.html"]);
            Assert.Contains("Hello from LinuxKit", result.Stdout, StringComparison.Ordinal);
            Assert.Single(await cluster.VmisAsync());
        }
        Assert.Empty(await cluster.VmisAsync());
    }

    [Fact]
    public async Task A_bridge_killed_outright_leaves_its_vmi_to_prune_which_deletes_it()
    {
        await using var manager = Manager();
        var vm = await manager.RunAsync(KubeVirtClusterFixture.ContainerDisk("dropbear"), Small);
        var name = $"linuxkit-testing-{vm.Id}";

        System.Diagnostics.Process.GetProcessById(vm.Pid).Kill();
        await TestEnvironment.AssertNoneLeftAsync("bridge", () => TestEnvironment.IsRunning(vm.Pid) ? [vm.Pid] : [], TimeSpan.FromSeconds(10));
        Assert.True((await cluster.VmisAsync()).ContainsKey(name), "a killed bridge cannot delete its VMI; prune must");

        var dryRun = await manager.PruneAsync(dryRun: true);
        Assert.Equal([name], dryRun.VirtualMachineInstances);
        Assert.True((await cluster.VmisAsync()).ContainsKey(name));

        var pruned = await manager.PruneAsync();
        Assert.Equal([name], pruned.VirtualMachineInstances);
        Assert.Empty(await cluster.VmisAsync());
        // Still listed while it terminates (its finalizer): a prune now does not report it again.
        Assert.Empty((await manager.PruneAsync()).VirtualMachineInstances);
        await cluster.AssertRemovedAsync(name);
    }

    [Fact]
    public async Task A_live_bridge_renews_its_lease_so_prune_spares_it_and_a_frozen_bridges_vmi_is_pruned_once_the_lease_lapses()
    {
        await using var manager = Manager(new KubeVirtOptions { Kubeconfig = cluster.Kubeconfig, Lease = TimeSpan.FromSeconds(3) });
        var vm = await manager.RunAsync(KubeVirtClusterFixture.ContainerDisk("dropbear"), Small);

        // Older than its first lease: a live bridge has renewed it, and a long test keeps its VM.
        await Task.Delay(TimeSpan.FromSeconds(4.5));
        Assert.Empty((await manager.PruneAsync()).VirtualMachineInstances);
        Assert.Equal("Linux\n", (await manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);

        // A bridge that renews nothing any more (frozen here; on another machine, gone with it):
        // its lease lapses and the VMI is anyone's to delete.
        TestEnvironment.Signal("STOP", vm.Pid);
        PruneResult pruned;
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(4.5));
            pruned = await manager.PruneAsync();
        }
        finally
        {
            TestEnvironment.Signal("CONT", vm.Pid);
        }

        Assert.Equal([$"linuxkit-testing-{vm.Id}"], pruned.VirtualMachineInstances);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while ((await manager.InspectAsync(vm.Id)).Status != ContainerStatus.Stopped && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Equal(ContainerStatus.Stopped, (await manager.InspectAsync(vm.Id)).Status);
    }

    [Fact]
    public async Task The_vmis_of_an_owner_that_dies_are_deleted_by_its_watchdog()
    {
        using var host = TestEnvironment.StartHost(_state.Path, new Dictionary<string, string>
        {
            ["LINUXKIT_TESTING_HYPERVISOR"] = "kubevirt",
            ["LINUXKIT_TESTING_KUBECONFIG"] = cluster.Kubeconfig,
        }, "run", KubeVirtClusterFixture.ContainerDisk("dropbear"));
        var (id, _) = await TestEnvironment.ReadStartedVmAsync(host);
        Assert.True((await cluster.VmisAsync()).ContainsKey($"linuxkit-testing-{id}"));

        host.Kill();

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while ((await cluster.VmisAsync()).Count > 0 && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.Empty(await cluster.VmisAsync());
    }

    [Fact]
    public async Task A_container_disk_the_cluster_cannot_pull_fails_the_boot_at_once_with_the_clusters_reason()
    {
        await using var manager = Manager(new KubeVirtOptions { Kubeconfig = cluster.Fake.Kubeconfig });
        var started = DateTime.UtcNow;
        var watches = cluster.Fake.Watches;

        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => manager.RunAsync("containerdisk:registry.test/missing:1", Small));

        // The cluster's reason and message, whichever the bridge saw first (ErrImagePull, then ImagePullBackOff).
        Assert.True(e.Message.Contains("its image cannot be pulled", StringComparison.Ordinal) && e.Message.Contains("\"registry.test/missing:1\"", StringComparison.Ordinal)
            && (e.Message.Contains("ErrImagePull:", StringComparison.Ordinal) || e.Message.Contains("ImagePullBackOff:", StringComparison.Ordinal)), e.Message);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(60), "the failed VMI was waited on like a slow one");
        // Seen through a watch (its first turned away with 429 and asked again), not by polling.
        Assert.True(cluster.Fake.Watches >= watches + 2, $"{cluster.Fake.Watches - watches} watches");
        Assert.Empty(await cluster.VmisAsync());
    }

    [Fact]
    public async Task A_token_that_expires_mid_run_is_renewed_for_new_ssh_connections_forwarded_ports_and_the_console()
    {
        var lifetime = cluster.Fake.TokenLifetime;
        var bootStarted = DateTime.UtcNow;
        await using var manager = Manager();
        var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small with { Ports = [new PortMapping(0, 80)] });

        // Every token the credential plugin had handed out when the boot began has expired.
        var expired = bootStarted + lifetime + TimeSpan.FromSeconds(1) - DateTime.UtcNow;
        if (expired > TimeSpan.Zero) await Task.Delay(expired);

        // A new SSH connection (another manager has its own), a new forwarded connection, and the
        // console (the fake ends streams when their token expires) all authenticate afresh.
        await using (var another = Manager())
            Assert.Equal("Linux\n", (await another.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);
        Assert.Contains("Hello from LinuxKit", await TestEnvironment.GetWhenServedAsync(vm.Ports.Single().Key), StringComparison.Ordinal);
        await AssertReachesConsoleLogAsync(manager, vm, "after-the-token-expired", "the console was not copied after the token it was opened with expired");

        Assert.True(cluster.Fake.TokensUsed.Count > 1, "the bridge never used a refreshed token");
        await manager.StopAsync(vm.Id);
    }

    [Fact]
    public async Task The_console_log_has_the_guests_console_from_its_first_byte_and_the_vmis_console_stays_the_users()
    {
        await using var manager = Manager();
        var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small);
        var fakeVmi = cluster.Fake.Vmis[$"linuxkit-testing-{vm.Id}"];
        var consolesBefore = cluster.Fake.ConsoleConnections;

        // What QEMU wrote before the bridge could have connected a live console is there.
        var guestConsole = File.ReadAllBytes(fakeVmi.Files!.ConsoleLog);
        var first = guestConsole.AsSpan(0, Math.Min(512, guestConsole.Length)).ToArray();
        Assert.NotEmpty(first);
        Assert.True(File.ReadAllBytes(vm.ConsoleLog).AsSpan().StartsWith(first), $"the console log does not begin where the guest's console began:\n{Encoding.UTF8.GetString(first)}\n---\n{File.ReadAllText(vm.ConsoleLog)[..Math.Min(600, File.ReadAllText(vm.ConsoleLog).Length)]}");

        // A user's `virtctl console`: the bridge never takes it away (virt-handler keeps one console per VMI).
        using var client = KubeVirtClient.Create(k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(cluster.Fake.Kubeconfig));
        using var console = await client.ConnectSubresourceAsync($"apis/subresources.kubevirt.io/v1/namespaces/{FakeKubeVirtCluster.Namespace}/virtualmachineinstances/linuxkit-testing-{vm.Id}/console", CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await manager.ExecAsync(vm.Id, ["sh", "-c", "echo for-the-user > /dev/console"]);
        var seen = new StringBuilder();
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var buffer = new byte[4096];
        while (!seen.ToString().Contains("for-the-user", StringComparison.Ordinal))
        {
            var received = await console.ReceiveAsync(buffer, wait.Token);
            Assert.NotEqual(System.Net.WebSockets.WebSocketMessageType.Close, received.MessageType);
            seen.Append(Encoding.UTF8.GetString(buffer, 0, received.Count));
        }
        Assert.Equal(consolesBefore + 1, cluster.Fake.ConsoleConnections);
        await manager.StopAsync(vm.Id);
    }

    [Fact]
    public async Task On_a_cluster_without_the_console_log_container_the_live_console_is_copied_instead()
    {
        cluster.Fake.SerialConsoleLog = false;
        try
        {
            await using var manager = Manager();
            var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small);
            await AssertReachesConsoleLogAsync(manager, vm, "from-the-live-console", "the live console was not copied");
            Assert.Contains("no guest-console-log container", await File.ReadAllTextAsync(HypervisorLog(vm)), StringComparison.Ordinal);
            await manager.StopAsync(vm.Id);
        }
        finally
        {
            cluster.Fake.SerialConsoleLog = true;
        }
    }

    [Fact]
    public async Task A_forwarded_guest_port_nothing_listens_on_closes_the_connection_and_logs_the_clusters_status()
    {
        await using var manager = Manager();
        var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small with { Ports = [new PortMapping(0, 8080)] });

        using (var client = new System.Net.Sockets.TcpClient())
        {
            await client.ConnectAsync(System.Net.IPAddress.Loopback, vm.Ports.Single().Key);
            using var read = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            Assert.Equal(0, await client.GetStream().ReadAsync(new byte[16], read.Token));
        }

        var log = HypervisorLog(vm);
        Assert.True(
            await Polling.UntilAsync(() => File.ReadAllText(log).Contains("500 Internal error occurred: dialing VM:", StringComparison.Ordinal), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(10), CancellationToken.None),
            File.ReadAllText(log));
        await manager.StopAsync(vm.Id);
    }

    [Fact]
    public async Task The_fake_admits_what_kubevirt_admits_and_refuses_oversized_user_data_and_invalid_labels()
    {
        using var client = KubeVirtClient.Create(k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(cluster.Fake.Kubeconfig));
        JsonObject Vmi(string name, int userData, string ownerHost) => new()
        {
            ["apiVersion"] = "kubevirt.io/v1",
            ["kind"] = "VirtualMachineInstance",
            ["metadata"] = new JsonObject { ["name"] = name, ["labels"] = new JsonObject { ["linuxkit-testing/owner-host"] = ownerHost } },
            ["spec"] = new JsonObject
            {
                ["volumes"] = new JsonArray(
                    new JsonObject { ["name"] = "boot", ["containerDisk"] = new JsonObject { ["image"] = "registry.test/unknown:1" } },
                    new JsonObject { ["name"] = "cidata", ["cloudInitNoCloud"] = new JsonObject { ["userDataBase64"] = Convert.ToBase64String(new byte[userData]) } }),
            },
        };
        async Task<string> RefusalAsync(JsonObject vmi)
        {
            using var body = System.Text.Json.JsonDocument.Parse(vmi.ToJsonString());
            var e = await Assert.ThrowsAsync<k8s.Autorest.HttpOperationException>(() => client.CustomObjects.CreateNamespacedCustomObjectAsync(body.RootElement, "kubevirt.io", "v1", FakeKubeVirtCluster.Namespace, "virtualmachineinstances"));
            Assert.Equal(System.Net.HttpStatusCode.UnprocessableEntity, e.Response.StatusCode);
            return e.Response.Content;
        }

        Assert.Contains("spec.volumes[1].cloudInitNoCloud userdata exceeds 2048 byte limit", await RefusalAsync(Vmi("too-much-user-data", 2049, "host")), StringComparison.Ordinal);
        Assert.Contains("a valid label must be", await RefusalAsync(Vmi("bad-label", 10, "not a valid/label value")), StringComparison.Ordinal);
        Assert.Contains("RFC 1123 subdomain", await RefusalAsync(Vmi("Not_A_Name", 10, "host")), StringComparison.Ordinal);
        Assert.Empty(await cluster.VmisAsync());
    }

    [Fact]
    public async Task Credentials_that_may_not_watch_still_boot_reading_the_vmi_instead()
    {
        cluster.Fake.RefuseWatches = true;
        try
        {
            await using var manager = Manager(new KubeVirtOptions { Kubeconfig = cluster.Fake.Kubeconfig });
            var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small);
            Assert.Equal("Linux\n", (await manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);
            Assert.Contains("cannot watch resource", await File.ReadAllTextAsync(HypervisorLog(vm)), StringComparison.Ordinal);
            await manager.StopAsync(vm.Id);
        }
        finally
        {
            cluster.Fake.RefuseWatches = false;
        }
    }

    [Fact]
    public async Task With_network_policy_asked_for_only_virt_api_may_reach_the_guest_and_the_policy_goes_with_the_vmi()
    {
        await using var manager = Manager(new KubeVirtOptions { Kubeconfig = cluster.Fake.Kubeconfig, NetworkPolicy = true });
        var vm = await manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small);
        var name = $"linuxkit-testing-{vm.Id}";
        var uid = cluster.Fake.Vmis[name].Uid;

        var policy = cluster.Fake.NetworkPolicies[name];
        Assert.Equal(uid, policy["spec"]!["podSelector"]!["matchLabels"]!["kubevirt.io/created-by"]!.GetValue<string>());
        Assert.Equal("virt-api", policy["spec"]!["ingress"]![0]!["from"]![0]!["podSelector"]!["matchLabels"]!["kubevirt.io"]!.GetValue<string>());
        Assert.Equal(uid, policy["metadata"]!["ownerReferences"]![0]!["uid"]!.GetValue<string>());
        Assert.Equal("Linux\n", (await manager.ExecAsync(vm.Id, ["uname", "-s"])).Stdout);

        await manager.StopAsync(vm.Id);
        Assert.True(
            await Polling.UntilAsync(() => !cluster.Fake.NetworkPolicies.ContainsKey(name), TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(10), CancellationToken.None),
            "the policy outlived its VMI");
    }

    [Fact]
    public async Task Credentials_the_cluster_refuses_fail_the_boot_naming_the_refusal()
    {
        var kubeconfig = Path.Combine(_state.Path, "wrong-kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, cluster.Fake.StaticKubeconfig("not-the-token"));
        await using var manager = Manager(new KubeVirtOptions { Kubeconfig = kubeconfig });

        var e = await Assert.ThrowsAsync<LinuxKitBootException>(() => manager.RunAsync(KubeVirtClusterFixture.FakeContainerDisk("dropbear"), Small));

        Assert.Contains("refused to create the VMI: 401", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Local_images_on_kubevirt_and_cluster_disks_on_qemu_are_refused_saying_what_to_pass()
    {
        await using var kubeVirt = Manager();
        var local = await Assert.ThrowsAsync<LinuxKitException>(() => kubeVirt.RunAsync(TestEnvironment.Image("qcow2"), Small));
        Assert.Contains("containerdisk:", local.Message, StringComparison.Ordinal);

        await using var qemu = new LinuxKitManager(new LinuxKitManagerOptions { StateDirectory = _state.Path, Hypervisor = HypervisorKind.Qemu });
        var onQemu = await Assert.ThrowsAsync<LinuxKitException>(() => qemu.RunAsync(KubeVirtClusterFixture.ContainerDisk("dropbear"), Small));
        Assert.Contains("KubeVirt", onQemu.Message, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<LinuxKitException>(() => Manager(new KubeVirtOptions { Kubeconfig = "/nonexistent/kubeconfig" }).RunAsync(KubeVirtClusterFixture.ContainerDisk("dropbear"), Small));
        Assert.Contains("'/nonexistent/kubeconfig' does not exist", missing.Message, StringComparison.Ordinal);
        Assert.Empty(await cluster.VmisAsync());
    }
}
