namespace LinuxKit.Testing;

/// <summary>
/// Every environment variable the SDK reads or sets, named in this one place. The hand-off
/// variables are the contract between a build step that started a VM (the MSBuild tasks, the
/// <c>dotnet test</c> hand-off) and the test fixtures that use it.
/// </summary>
internal static class LinuxKitEnvironment
{
    /// <summary>The state directory, when <see cref="LinuxKitManagerOptions.StateDirectory"/> is not set.</summary>
    public const string StateDirectory = "LINUXKIT_TESTING_HOME";

    /// <summary><c>qemu</c>, <c>hyperkit</c> or <c>kubevirt</c>: wins over detection when <see cref="LinuxKitManagerOptions.Hypervisor"/> is Auto.</summary>
    public const string Hypervisor = "LINUXKIT_TESTING_HYPERVISOR";

    /// <summary>The qemu-system-x86_64 binary, when <see cref="LinuxKitManagerOptions.QemuPath"/> is not set.</summary>
    public const string Qemu = "LINUXKIT_TESTING_QEMU";

    /// <summary>The qemu-system-aarch64 binary for arm64 guests; by default the one beside the x86_64 binary, else on PATH.</summary>
    public const string QemuAarch64 = "LINUXKIT_TESTING_QEMU_AARCH64";

    /// <summary>
    /// UEFI firmware code (read-only pflash) to use instead of what QEMU's firmware descriptors
    /// name; with <see cref="UefiVars"/>, the variables template each VM gets a copy of.
    /// </summary>
    public const string UefiCode = "LINUXKIT_TESTING_UEFI_CODE";

    /// <summary>The UEFI variables template that goes with <see cref="UefiCode"/>.</summary>
    public const string UefiVars = "LINUXKIT_TESTING_UEFI_VARS";

    /// <summary>The kubeconfig for KubeVirt, when <c>KubeVirtOptions.Kubeconfig</c> is not set (before KUBECONFIG).</summary>
    public const string Kubeconfig = "LINUXKIT_TESTING_KUBECONFIG";

    /// <summary>The kubeconfig context for KubeVirt, when <c>KubeVirtOptions.Context</c> is not set.</summary>
    public const string KubeContext = "LINUXKIT_TESTING_KUBE_CONTEXT";

    /// <summary>The namespace for KubeVirt VMIs, when <c>KubeVirtOptions.Namespace</c> is not set.</summary>
    public const string KubeNamespace = "LINUXKIT_TESTING_KUBE_NAMESPACE";

    /// <summary>The hyperkit binary, when <c>HyperkitOptions.Binary</c> is not set.</summary>
    public const string Hyperkit = "LINUXKIT_TESTING_HYPERKIT";

    /// <summary><c>kvm</c>, <c>hvf</c> or <c>tcg</c>: wins over detection when <see cref="LinuxKitManagerOptions.Accelerator"/> is Auto.</summary>
    public const string Accelerator = "LINUXKIT_TESTING_ACCEL";

    /// <summary><c>0</c>, <c>false</c>, <c>off</c> or <c>no</c>: every VM boots cold (see <see cref="RunOptions.WarmStart"/>).</summary>
    public const string WarmStart = "LINUXKIT_TESTING_WARM_START";

    /// <summary>
    /// <c>0</c>, <c>false</c>, <c>off</c> or <c>no</c>: x86_64 kernel+initrd images boot under
    /// QEMU's default BIOS (SeaBIOS) instead of its minimal one (qboot).
    /// </summary>
    public const string Qboot = "LINUXKIT_TESTING_QBOOT";

    /// <summary>The image the test fixtures boot when neither a fixture nor an attribute names one.</summary>
    public const string Image = "LINUXKIT_IMAGE";

    /// <summary>Hand-off: the id of a running VM a build step started; fixtures use it instead of booting one.</summary>
    public const string VmId = "LINUXKIT_VM_ID";

    /// <summary>Hand-off: that VM's SSH port on 127.0.0.1.</summary>
    public const string VmSshPort = "LINUXKIT_VM_SSH_PORT";

    /// <summary>Hand-off: the private key that VM accepts.</summary>
    public const string VmSshKey = "LINUXKIT_VM_SSH_KEY";

    /// <summary>Hand-off: the user to log in as.</summary>
    public const string VmSshUser = "LINUXKIT_VM_SSH_USER";

    /// <summary>The hand-off variables a build step sets (with <see cref="StateDirectory"/>) and clears again.</summary>
    public static IReadOnlyList<string> HandOff { get; } = [VmId, VmSshPort, VmSshKey, VmSshUser];

    /// <summary>The variable's value; null when it is unset or empty.</summary>
    internal static string? Read(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : null;

    /// <summary>False when the variable says 0, false, off or no; true otherwise (unset included).</summary>
    internal static bool IsOn(string name) =>
        Read(name)?.Trim().ToLowerInvariant() is not ("0" or "false" or "off" or "no");

    /// <summary>The variable's value as an enum member (case-insensitive); null when unset, empty or not a member.</summary>
    internal static TEnum? Read<TEnum>(string name) where TEnum : struct, Enum =>
        Enum.TryParse<TEnum>(Read(name), ignoreCase: true, out var value) ? value : null;
}
