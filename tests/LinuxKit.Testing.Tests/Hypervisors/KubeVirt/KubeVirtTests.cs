using System.Text;
using System.Text.Json.Nodes;
using LinuxKit.Testing.Hypervisors;
using LinuxKit.Testing.Hypervisors.KubeVirt;
using LinuxKit.Testing.Images;
using LinuxKit.Testing.KubeVirt;
using LinuxKit.Testing.State;
using Snapshooter.Xunit;

namespace LinuxKit.Testing.Tests.Hypervisors.KubeVirt;

public sealed class KubeVirtTests
{
    private static VmiRequest Request(ClusterDisk disk) => new()
    {
        Name = "linuxkit-testing-0123abcd",
        Disk = disk,
        MemoryMb = 256,
        Cpus = 2,
        UserData = """{"ssh":{"entries":{"authorized_keys":{"content":"ssh-ed25519 AAAA test"}}}}"""u8.ToArray(),
        OwnerHost = "CI-Runner_7.example",
        OwnerPid = 4242,
        OwnerStartTime = "123456789",
        OwnerNamespace = "ns",
        OwnerBoot = "boot-1",
        OwnerToken = "0f0f",
        ExpiresAt = new DateTimeOffset(2026, 11, 29, 15, 0, 0, TimeSpan.Zero),
    };

    private static VmSpec Spec(string disk, int memoryMb, int cpus, string folder, params PortForward[] ports) => new()
    {
        Id = "0123abcd",
        Image = new LinuxKitImage { Format = ImageFormat.ClusterDisk, Path = disk },
        MemoryMb = memoryMb,
        Cpus = cpus,
        SshPort = 40022,
        Ports = ports,
        Files = new VmFiles("0123abcd", folder),
    };

    [Theory]
    [InlineData("containerdisk:registry.test/os:1", "/containerDisk/image", "registry.test/os:1")]
    [InlineData("pvc:os-disk", "/ephemeral/persistentVolumeClaim/claimName", "os-disk")]
    [InlineData("datavolume:os-dv", "/ephemeral/persistentVolumeClaim/claimName", "os-dv")]
    public void The_boot_volume_comes_from_the_disk_the_image_names_and_a_claim_is_never_written(string image, string path, string value)
    {
        var vmi = VmiManifest.Build(Request(ClusterDisk.Parse(image)));

        var boot = vmi["spec"]!["volumes"]![0]!;
        Assert.Equal("boot", boot["name"]!.GetValue<string>());
        var node = path.Split('/', StringSplitOptions.RemoveEmptyEntries).Aggregate(boot, (n, part) => n[part]!);
        Assert.Equal(value, node.GetValue<string>());
        // Copy-on-write over a claim read only: tests never write into the golden disk, and
        // parallel VMs of one disk do not clash on it.
        Assert.Null(boot["persistentVolumeClaim"]);
        Assert.Null(boot["dataVolume"]);
        if (boot["ephemeral"] is { } ephemeral) Assert.True(ephemeral["persistentVolumeClaim"]!["readOnly"]!.GetValue<bool>());
    }

    [Fact]
    public void The_metadata_goes_in_as_cloud_init_nocloud_user_data_on_a_second_disk()
    {
        var vmi = VmiManifest.Build(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "registry.test/os:1")));

        var cidata = vmi["spec"]!["volumes"]![1]!;
        Assert.Equal(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "x")).UserData, Convert.FromBase64String(cidata["cloudInitNoCloud"]!["userDataBase64"]!.GetValue<string>()));
        Assert.Equal(["boot", "cidata"], vmi["spec"]!["domain"]!["devices"]!["disks"]!.AsArray().Select(d => d!["name"]!.GetValue<string>()));
        Assert.Equal("256Mi", vmi["spec"]!["domain"]!["resources"]!["requests"]!["memory"]!.GetValue<string>());
        Assert.Equal(2, vmi["spec"]!["domain"]!["cpu"]!["cores"]!.GetValue<int>());
        Assert.NotNull(vmi["spec"]!["domain"]!["devices"]!["interfaces"]![0]!["masquerade"]);
    }

    [Fact]
    public void A_kubeconfig_list_is_merged_as_kubectl_merges_it_the_first_file_to_name_a_thing_winning()
    {
        var folder = Directory.CreateTempSubdirectory("lkt-kubeconfig-");
        var first = Path.Combine(folder.FullName, "cluster");
        var second = Path.Combine(folder.FullName, "user");
        File.WriteAllText(first, """
            apiVersion: v1
            kind: Config
            clusters:
            - name: lab
              cluster:
                server: https://lab.example:6443
            contexts:
            - name: lab
              context: {cluster: lab, user: tester, namespace: tests}
            current-context: lab
            """);
        File.WriteAllText(second, """
            apiVersion: v1
            kind: Config
            clusters:
            - name: lab
              cluster:
                server: https://not-this-one.example:6443
            users:
            - name: tester
              user:
                token: from-the-second-file
            current-context: elsewhere
            """);

        var config = Kubeconfig.Load($"{first}{Path.PathSeparator}{second}", null);

        Assert.Equal("https://lab.example:6443", config.Host.TrimEnd('/'));
        Assert.Equal("from-the-second-file", config.AccessToken);
        Assert.Equal("tests", config.Namespace);
        folder.Delete(recursive: true);
    }

    [Fact]
    public void Metadata_over_kubevirts_inline_user_data_limit_is_refused_before_the_cluster_is_asked_saying_what_to_change()
    {
        var request = Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "registry.test/os:1"));
        VmiManifest.Build(request with { UserData = new byte[VmiManifest.UserDataLimit] });

        var e = Assert.Throws<BridgeException>(() => VmiManifest.Build(request with { UserData = new byte[VmiManifest.UserDataLimit + 1] }));

        Assert.Contains("2049 bytes", e.Message, StringComparison.Ordinal);
        Assert.Contains("Ed25519", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Uefi_and_arm64_asked_for_become_the_vmis_efi_bootloader_without_secure_boot_and_its_architecture()
    {
        var plain = VmiManifest.Build(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "registry.test/os:1")));
        var asked = VmiManifest.Build(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "registry.test/os:1")) with { Uefi = true, Architecture = "arm64" });
        Assert.Null(plain["spec"]!["domain"]!["firmware"]);
        Assert.Null(plain["spec"]!["architecture"]);
        Assert.False(asked["spec"]!["domain"]!["firmware"]!["bootloader"]!["efi"]!["secureBoot"]!.GetValue<bool>());
        Assert.Equal("arm64", asked["spec"]!["architecture"]!.GetValue<string>());
    }

    [Fact]
    public void The_vmi_carries_labels_that_find_it_and_its_bridge_and_an_expiry_annotation()
    {
        var metadata = VmiManifest.Build(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "registry.test/os:1")))["metadata"]!;

        Assert.Equal("linuxkit-testing-0123abcd", metadata["name"]!.GetValue<string>());
        var labels = metadata["labels"]!.AsObject().ToDictionary(l => l.Key, l => l.Value!.GetValue<string>());
        Assert.Equal(new Dictionary<string, string>
        {
            ["app.kubernetes.io/managed-by"] = "linuxkit-testing",
            ["linuxkit-testing/owner-host"] = "CI-Runner_7.example",
            ["linuxkit-testing/owner-pid"] = "4242",
            ["linuxkit-testing/owner-start"] = "123456789",
            ["linuxkit-testing/owner-namespace"] = "ns",
            ["linuxkit-testing/owner-boot"] = "boot-1",
            ["linuxkit-testing/owner-token"] = "0f0f",
        }, labels);
        Assert.Equal("2026-11-29T15:00:00Z", metadata["annotations"]!["linuxkit-testing/expires-at"]!.GetValue<string>());
    }

    [Fact]
    public void The_lease_renewal_moves_the_expiry_only_on_the_vmi_that_carries_the_bridges_token()
    {
        var renewal = VmiManifest.Renewal("0F0F", new DateTimeOffset(2026, 11, 29, 15, 10, 0, TimeSpan.Zero));

        Assert.Equal(
            """[{"op":"test","path":"/metadata/labels/linuxkit-testing~1owner-token","value":"0F0F"},{"op":"replace","path":"/metadata/annotations/linuxkit-testing~1expires-at","value":"2026-11-29T15:10:00Z"}]""",
            renewal.ToJsonString());
    }

    [Fact]
    public void A_scheduling_vmi_whose_image_cannot_be_pulled_cannot_start_and_one_not_yet_scheduled_may_still()
    {
        // What a cluster reports: the phase stays Scheduling, the reasons are conditions.
        var pullError = JsonNode.Parse("""
            {"status":{"phase":"Scheduling","conditions":[
              {"type":"Synchronized","status":"False","reason":"ImagePullBackOff","message":"Back-off pulling image \"registry.test/x:1\""}]}}
            """);
        var unschedulable = JsonNode.Parse("""
            {"status":{"phase":"Scheduling","conditions":[
              {"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient memory."}]}}
            """);

        Assert.Equal("ImagePullBackOff: Back-off pulling image \"registry.test/x:1\"", VmiStatus.Of(pullError).CannotStart);
        Assert.False(VmiStatus.Of(pullError).HasEnded);
        Assert.Null(VmiStatus.Of(unschedulable).CannotStart);
        Assert.Equal("Unschedulable: 0/3 nodes are available: 3 Insufficient memory.", VmiStatus.Of(unschedulable).Unscheduled);
    }

    [Theory]
    [InlineData("my host!", "my-host")]
    [InlineData("-.leading and trailing._", "leading-and-trailing")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123456789", "012345678901234567890123456789012345678901234567890123456789012")]
    public void Label_values_are_made_valid_for_kubernetes(string value, string label) =>
        Assert.Equal(label, VmiManifest.LabelValue(value));

    [Fact]
    public void A_vmi_is_an_orphan_past_its_expiry_or_when_its_bridge_on_this_host_is_gone()
    {
        var now = new DateTimeOffset(2026, 11, 29, 14, 0, 0, TimeSpan.Zero);
        JsonNode Vmi(string host, DateTimeOffset expires) => VmiManifest.Build(Request(new ClusterDisk(ClusterDiskSource.ContainerDisk, "x")) with { OwnerHost = host, ExpiresAt = expires });
        string? Alive(int pid) => "123456789";
        string? Reused(int pid) => "999";
        string? Gone(int pid) => null;
        var later = now.AddHours(1);

        Assert.False(Orphans.IsOrphan(Vmi("here", later), "here", "ns", "boot-1", now, Alive));
        Assert.True(Orphans.IsOrphan(Vmi("here", later), "here", "ns", "boot-1", now, Gone));
        Assert.True(Orphans.IsOrphan(Vmi("here", later), "here", "ns", "boot-1", now, Reused));
        Assert.False(Orphans.IsOrphan(Vmi("elsewhere", later), "here", "ns", "boot-1", now, Gone)); // another machine's bridge is its business
        Assert.True(Orphans.IsOrphan(Vmi("elsewhere", now.AddMinutes(-1)), "here", "ns", "boot-1", now, Alive)); // expired: anyone's
        // The same host name in another PID namespace (a container, a cloned machine): its PID names nothing here.
        Assert.False(Orphans.IsOrphan(Vmi("here", later), "here", "another-ns", "boot-1", now, Gone));
        // A bridge of an earlier boot of this machine is gone, whatever process has its PID now.
        Assert.True(Orphans.IsOrphan(Vmi("here", later), "here", "ns", "boot-2", now, Alive));
        Assert.False(Orphans.IsOrphan(Vmi("elsewhere", later), "here", "ns", "boot-2", now, Gone));
        // Deleted already and terminating: a cluster lists it for seconds more, nothing to delete.
        var terminating = Vmi("here", now.AddMinutes(-1));
        terminating["metadata"]!["deletionTimestamp"] = "2026-11-29T13:59:00Z";
        Assert.False(Orphans.IsOrphan(terminating, "here", "ns", "boot-1", now, Gone));
    }

    [Theory]
    [InlineData("containerdisk:", "names no containerdisk")]
    [InlineData("pvc:two words", "names no pvc")]
    [InlineData("docker://x", "is not a cluster disk")]
    public void A_cluster_disk_reference_that_names_nothing_is_refused_showing_the_forms(string reference, string reason)
    {
        var e = Assert.Throws<LinuxKitException>(() => ClusterDisk.Parse(reference));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
        Assert.Contains("containerdisk:REGISTRY/IMAGE:TAG", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_image_naming_a_cluster_disk_resolves_without_touching_the_file_system()
    {
        var image = LinuxKitImage.Resolve("ContainerDisk:quay.io/me/linuxkit:1");

        Assert.Equal(ImageFormat.ClusterDisk, image.Format);
        Assert.Equal("containerdisk:quay.io/me/linuxkit:1", image.Path);
        Assert.Throws<LinuxKitException>(() => image.RequireLocal(HypervisorKind.Qemu));
    }

    [Fact]
    public void The_bridge_command_line_matches_snapshot()
    {
        var spec = Spec("containerdisk:registry.test/os:1", 512, 1, "/state/vms/0123abcd", new PortForward(8080, 80));
        var cluster = new KubeVirtCluster("/home/me/.kube/config", "kind-kubevirt", "tests");

        var args = KubeVirtBridgeCommand.Run(spec, cluster, new KubeVirtOptions(), "/state/vms/0123abcd/user-data", "ci-7");

        Snapshot.Match(args);
        Assert.Equal(["delete", "--kubeconfig", "/home/me/.kube/config", "--context", "kind-kubevirt", "--namespace", "tests", "--name", "linuxkit-testing-0123abcd"], KubeVirtBridgeCommand.Delete("0123abcd", cluster));
    }

    [Fact]
    public void The_bridge_reads_back_the_command_line_the_core_writes()
    {
        var cluster = new KubeVirtCluster("/k", null, null);
        var spec = Spec("pvc:os", 256, 2, "/s/0123abcd", new PortForward(8080, 80), new PortForward(8443, 443));

        var parsed = BridgeArguments.Parse(KubeVirtBridgeCommand.Run(spec, cluster, new KubeVirtOptions { ScheduleTimeout = TimeSpan.FromSeconds(90.5) }, "/s/u", "h"));

        Assert.Equal("run", parsed.Verb);
        Assert.Equal("/k", parsed.Required("--kubeconfig"));
        Assert.Null(parsed.Optional("--namespace"));
        Assert.Equal(40022, parsed.Number("--ssh-port"));
        Assert.Equal(91, parsed.Number("--schedule-timeout"));
        Assert.Equal(["8080:80", "8443:443"], parsed.All("--forward"));
        Assert.True(BridgeArguments.Parse(KubeVirtBridgeCommand.Prune(cluster, "h", dryRun: true)).Flag("--dry-run"));
        Assert.Throws<ArgumentException>(() => BridgeArguments.Parse(["run", "--name"]));
    }
}
