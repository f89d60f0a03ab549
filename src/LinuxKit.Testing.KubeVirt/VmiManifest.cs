using System.Globalization;
using System.Text.Json.Nodes;
using LinuxKit.Testing.Images;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>What a VMI is made of: everything the bridge puts in its manifest.</summary>
internal sealed record VmiRequest
{
    public required string Name { get; init; }
    public required ClusterDisk Disk { get; init; }
    public required int MemoryMb { get; init; }
    public required int Cpus { get; init; }

    /// <summary>Boot under UEFI (without Secure Boot) instead of BIOS.</summary>
    public bool Uefi { get; init; }

    /// <summary>The VMI's architecture (e.g. "arm64"); null for the cluster's default.</summary>
    public string? Architecture { get; init; }

    /// <summary>The LinuxKit metadata JSON, given to the guest as cloud-init NoCloud user-data.</summary>
    public required byte[] UserData { get; init; }

    /// <summary>The machine whose bridge process keeps the VMI.</summary>
    public required string OwnerHost { get; init; }
    public required int OwnerPid { get; init; }

    /// <summary>The bridge process's start time, so a reused PID is never taken for it.</summary>
    public required string OwnerStartTime { get; init; }

    /// <summary>
    /// The bridge's machine and PID namespace (<see cref="Orphans.Here"/>): a host name is shared
    /// by containers and machines cloned from one image, and a PID means something only there.
    /// </summary>
    public required string OwnerNamespace { get; init; }

    /// <summary>The boot of the bridge's machine: a PID from an earlier boot names nothing.</summary>
    public required string OwnerBoot { get; init; }

    /// <summary>Random, this bridge's own: it renews and deletes only the VMI that carries it.</summary>
    public required string OwnerToken { get; init; }

    /// <summary>The end of the lease the bridge renews while it lives.</summary>
    public required DateTimeOffset ExpiresAt { get; init; }
}

/// <summary>
/// Builds a <c>kubevirt.io/v1</c> VirtualMachineInstance for a <see cref="VmiRequest"/>, and
/// names the labels and annotation the SDK finds its VMIs by. Pure: tested without a cluster.
/// </summary>
internal static class VmiManifest
{
    public const string Group = "kubevirt.io";
    public const string Version = "v1";
    public const string Plural = "virtualmachineinstances";

    public const string ManagedByLabel = "app.kubernetes.io/managed-by";
    public const string ManagedBy = "linuxkit-testing";
    public const string OwnerHostLabel = "linuxkit-testing/owner-host";
    public const string OwnerPidLabel = "linuxkit-testing/owner-pid";
    public const string OwnerStartLabel = "linuxkit-testing/owner-start";
    public const string OwnerNamespaceLabel = "linuxkit-testing/owner-namespace";
    public const string OwnerBootLabel = "linuxkit-testing/owner-boot";
    public const string OwnerTokenLabel = "linuxkit-testing/owner-token";
    public const string ExpiresAtAnnotation = "linuxkit-testing/expires-at";

    /// <summary>
    /// The most cloud-init user-data KubeVirt takes inline (its VMI admission refuses more,
    /// cloudInitUserMaxLen in virt-api's vmi-create-admitter.go).
    /// </summary>
    public const int UserDataLimit = 2048;

    /// <summary>The label selector of every VMI the SDK made.</summary>
    public static string Selector => $"{ManagedByLabel}={ManagedBy}";

    /// <exception cref="BridgeException">The metadata is more than KubeVirt takes.</exception>
    public static JsonObject Build(VmiRequest request)
    {
        // Said before the cluster is asked: its refusal names a field, not what to do.
        if (request.UserData.Length > UserDataLimit)
            throw new BridgeException(
                $"The VM's metadata is {request.UserData.Length} bytes; KubeVirt takes at most {UserDataLimit} bytes of cloud-init user-data in a VMI. " +
                "The SSH public key is most of it: use an ECDSA or Ed25519 key (RunOptions.SshKey) rather than a long RSA one.");

        // A test VM must leave the disk it boots from as it found it, and VMs of one disk run side
        // by side: a claim (a DataVolume's is the claim CDI made under its name) is attached as
        // KubeVirt's `ephemeral` volume, copy-on-write over the claim, whose changes go with the
        // VMI. A container disk is ephemeral by nature.
        var bootVolume = new JsonObject { ["name"] = "boot" };
        if (request.Disk.Source == ClusterDiskSource.ContainerDisk)
            bootVolume["containerDisk"] = new JsonObject { ["image"] = request.Disk.Name };
        else
            bootVolume["ephemeral"] = new JsonObject { ["persistentVolumeClaim"] = new JsonObject { ["claimName"] = request.Disk.Name, ["readOnly"] = true } };

        var manifest = new JsonObject
        {
            ["apiVersion"] = $"{Group}/{Version}",
            ["kind"] = "VirtualMachineInstance",
            ["metadata"] = new JsonObject
            {
                ["name"] = request.Name,
                ["labels"] = new JsonObject
                {
                    [ManagedByLabel] = ManagedBy,
                    [OwnerHostLabel] = LabelValue(request.OwnerHost),
                    [OwnerPidLabel] = request.OwnerPid.ToString(CultureInfo.InvariantCulture),
                    [OwnerStartLabel] = LabelValue(request.OwnerStartTime),
                    [OwnerNamespaceLabel] = LabelValue(request.OwnerNamespace),
                    [OwnerBootLabel] = LabelValue(request.OwnerBoot),
                    [OwnerTokenLabel] = LabelValue(request.OwnerToken),
                },
                ["annotations"] = new JsonObject
                {
                    [ExpiresAtAnnotation] = Timestamp(request.ExpiresAt),
                },
            },
            ["spec"] = new JsonObject
            {
                // A test VM keeps nothing worth a graceful shutdown: deleting it ends it at once.
                ["terminationGracePeriodSeconds"] = 0,
                ["domain"] = new JsonObject
                {
                    ["cpu"] = new JsonObject { ["cores"] = request.Cpus },
                    ["resources"] = new JsonObject { ["requests"] = new JsonObject { ["memory"] = $"{request.MemoryMb.ToString(CultureInfo.InvariantCulture)}Mi" } },
                    ["devices"] = new JsonObject
                    {
                        ["disks"] = new JsonArray(
                            new JsonObject { ["name"] = "boot", ["disk"] = new JsonObject { ["bus"] = "virtio" } },
                            new JsonObject { ["name"] = "cidata", ["disk"] = new JsonObject { ["bus"] = "virtio" } }),
                        ["interfaces"] = new JsonArray(new JsonObject { ["name"] = "default", ["masquerade"] = new JsonObject() }),
                    },
                },
                ["networks"] = new JsonArray(new JsonObject { ["name"] = "default", ["pod"] = new JsonObject() }),
                ["volumes"] = new JsonArray(
                    bootVolume,
                    new JsonObject
                    {
                        ["name"] = "cidata",
                        ["cloudInitNoCloud"] = new JsonObject { ["userDataBase64"] = Convert.ToBase64String(request.UserData) },
                    }),
            },
        };
        var spec = manifest["spec"]!.AsObject();
        if (request.Uefi)
            spec["domain"]!["firmware"] = new JsonObject { ["bootloader"] = new JsonObject { ["efi"] = new JsonObject { ["secureBoot"] = false } } };
        if (request.Architecture is { } architecture) spec["architecture"] = architecture;
        return manifest;
    }

    /// <summary>
    /// A NetworkPolicy that admits to the VMI's virt-launcher pod (KubeVirt labels it
    /// <c>kubevirt.io/created-by</c> with the VMI's uid) only virt-api's pods, which carry its
    /// port-forward (virt-api dials the VMI's address itself, pkg/virt-api/rest/dialers.go). Owned
    /// by the VMI: the cluster's garbage collector deletes it with the VMI.
    /// </summary>
    public static JsonObject Isolation(string vmiName, string vmiUid) => new()
    {
        ["apiVersion"] = "networking.k8s.io/v1",
        ["kind"] = "NetworkPolicy",
        ["metadata"] = new JsonObject
        {
            ["name"] = vmiName,
            ["labels"] = new JsonObject { [ManagedByLabel] = ManagedBy },
            ["ownerReferences"] = new JsonArray(new JsonObject
            {
                ["apiVersion"] = $"{Group}/{Version}",
                ["kind"] = "VirtualMachineInstance",
                ["name"] = vmiName,
                ["uid"] = vmiUid,
            }),
        },
        ["spec"] = new JsonObject
        {
            ["podSelector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["kubevirt.io/created-by"] = vmiUid } },
            ["policyTypes"] = new JsonArray("Ingress"),
            ["ingress"] = new JsonArray(new JsonObject
            {
                ["from"] = new JsonArray(new JsonObject
                {
                    ["namespaceSelector"] = new JsonObject(),
                    ["podSelector"] = new JsonObject { ["matchLabels"] = new JsonObject { ["kubevirt.io"] = "virt-api" } },
                }),
            }),
        },
    };

    /// <summary>A time as the expiry annotation writes it.</summary>
    public static string Timestamp(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);

    /// <summary>
    /// The JSON patch that moves the VMI's expiry to <paramref name="expiresAt"/> only if it still
    /// carries <paramref name="ownerToken"/> (a <c>test</c> operation: the server refuses the
    /// whole patch otherwise).
    /// </summary>
    public static JsonArray Renewal(string ownerToken, DateTimeOffset expiresAt) =>
    [
        new JsonObject { ["op"] = "test", ["path"] = $"/metadata/labels/{Pointer(OwnerTokenLabel)}", ["value"] = LabelValue(ownerToken) },
        new JsonObject { ["op"] = "replace", ["path"] = $"/metadata/annotations/{Pointer(ExpiresAtAnnotation)}", ["value"] = Timestamp(expiresAt) },
    ];

    // A key as a JSON pointer segment (RFC 6901).
    private static string Pointer(string key) => key.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    // Label values: at most 63 characters of [A-Za-z0-9._-], starting and ending alphanumeric.
    internal static string LabelValue(string value)
    {
        var cleaned = new string(value.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-').ToArray());
        if (cleaned.Length > 63) cleaned = cleaned[..63];
        return cleaned.Trim('.', '_', '-');
    }
}
