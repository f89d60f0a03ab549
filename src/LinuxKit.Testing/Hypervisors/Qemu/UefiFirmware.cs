using System.Text.Json;
using System.Text.Json.Nodes;

namespace LinuxKit.Testing.Hypervisors.Qemu;

/// <summary>UEFI firmware for one architecture: code mapped read-only, and the variables template each VM copies.</summary>
/// <param name="Code">The firmware code (read-only pflash).</param>
/// <param name="VarsTemplate">The empty variables store a VM's writable pflash starts as.</param>
/// <param name="Source">Where it was found (a descriptor, a known path, the environment), for messages.</param>
internal sealed record UefiFirmware(string Code, string VarsTemplate, string Source)
{
    /// <summary>
    /// Finds the firmware as libvirt does: QEMU's firmware descriptors (JSON files in
    /// <c>firmware</c> folders, the user's over the system's, in name order), taking the first
    /// that boots UEFI from flash for the architecture without Secure Boot, enrolled keys or SMM;
    /// then the files distributions are known to install. The environment variables
    /// <see cref="LinuxKitEnvironment.UefiCode"/> and <see cref="LinuxKitEnvironment.UefiVars"/> win.
    /// </summary>
    /// <param name="architecture">The guest's architecture.</param>
    /// <param name="qemuBinary">The QEMU binary: its install prefix's share/qemu/firmware is searched first.</param>
    /// <exception cref="LinuxKitException">No firmware is found; the message names the package to install.</exception>
    public static UefiFirmware Find(GuestArchitecture architecture, string qemuBinary)
    {
        var code = LinuxKitEnvironment.Read(LinuxKitEnvironment.UefiCode);
        var vars = LinuxKitEnvironment.Read(LinuxKitEnvironment.UefiVars);
        if (code is not null || vars is not null)
        {
            if (code is null || vars is null)
                throw new LinuxKitException($"Set both {LinuxKitEnvironment.UefiCode} (the firmware code) and {LinuxKitEnvironment.UefiVars} (its variables template), or neither.");
            foreach (var file in new[] { code, vars })
            {
                if (!File.Exists(file)) throw new LinuxKitException($"UEFI firmware file '{file}' (from {LinuxKitEnvironment.UefiCode}/{LinuxKitEnvironment.UefiVars}) does not exist.");
            }
            return new UefiFirmware(code, vars, "the environment");
        }
        var descriptors = DescriptorFolders(qemuBinary)
            .Where(Directory.Exists)
            .SelectMany(folder => Directory.EnumerateFiles(folder, "*.json"))
            .GroupBy(Path.GetFileName, StringComparer.Ordinal)  // a name in an earlier folder hides the same name after
            .Select(g => g.First())
            .OrderBy(Path.GetFileName, StringComparer.Ordinal)
            .Select(f => (Name: f, Json: ReadOrEmpty(f)));
        return Choose(descriptors, architecture, File.Exists)
            ?? KnownFiles(architecture).Where(k => File.Exists(k.Code) && File.Exists(k.VarsTemplate)).Select(k => k with { Source = "a known install path" }).FirstOrDefault()
            ?? throw new LinuxKitException(
                $"No UEFI firmware for {Name(architecture)} was found (none of QEMU's firmware descriptors in {string.Join(", ", DescriptorFolders(qemuBinary))} names one, nor is one at a known path). " +
                $"Install it: Debian/Ubuntu 'sudo apt-get install {(architecture == GuestArchitecture.Arm64 ? "qemu-efi-aarch64" : "ovmf")}', Fedora 'sudo dnf install {(architecture == GuestArchitecture.Arm64 ? "edk2-aarch64" : "edk2-ovmf")}', macOS 'brew install qemu'; " +
                $"or set {LinuxKitEnvironment.UefiCode} and {LinuxKitEnvironment.UefiVars}.");
    }

    /// <summary>The first descriptor (in the order given) that suits; pure apart from <paramref name="exists"/>.</summary>
    internal static UefiFirmware? Choose(IEnumerable<(string Name, string Json)> descriptors, GuestArchitecture architecture, Func<string, bool> exists)
    {
        var target = architecture == GuestArchitecture.Arm64 ? "aarch64" : "x86_64";
        foreach (var (name, json) in descriptors)
        {
            JsonNode? root;
            try { root = JsonNode.Parse(json); }
            catch (JsonException) { continue; } // a damaged descriptor is skipped, as QEMU's own tools do
            if (root is not JsonObject d) continue;
            if (!Strings(d["interface-types"]).Contains("uefi")) continue;
            var mapping = d["mapping"] as JsonObject;
            if (mapping?["device"]?.GetValue<string>() != "flash") continue;
            if (mapping["mode"]?.GetValue<string>() is { } mode && mode != "split") continue;
            var code = mapping["executable"]?["filename"]?.GetValue<string>();
            var vars = mapping["nvram-template"]?["filename"]?.GetValue<string>();
            if (code is null || vars is null) continue;
            if (new[] { mapping["executable"]?["format"], mapping["nvram-template"]?["format"] }.Any(f => f is not null && f.GetValue<string>() != "raw")) continue;
            if (!(d["targets"] as JsonArray ?? []).Any(t => t?["architecture"]?.GetValue<string>() == target)) continue;
            var features = Strings(d["features"]);
            if (features.Overlaps(["secure-boot", "enrolled-keys", "requires-smm", "amd-sev-es", "intel-tdx"])) continue;
            if (!exists(code) || !exists(vars)) continue;
            return new UefiFirmware(code, vars, "descriptor " + name);
        }
        return null;
    }

    /// <summary>Where QEMU's firmware descriptors live, the first folder winning over the later ones.</summary>
    internal static IEnumerable<string> DescriptorFolders(string qemuBinary)
    {
        var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        yield return Path.Combine(config, "qemu", "firmware");
        yield return "/etc/qemu/firmware";
        // The prefix QEMU was installed to: Homebrew's /opt/homebrew, /usr/local, a build's own.
        if (Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(qemuBinary))) is { } prefix && prefix != "/usr")
            yield return Path.Combine(prefix, "share", "qemu", "firmware");
        yield return "/usr/share/qemu/firmware";
    }

    private static IEnumerable<UefiFirmware> KnownFiles(GuestArchitecture architecture) => architecture == GuestArchitecture.Arm64
        ?
        [
            new("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd", ""),
            new("/usr/share/edk2/aarch64/QEMU_EFI-pflash.raw", "/usr/share/edk2/aarch64/vars-template-pflash.raw", ""),
            new("/opt/homebrew/share/qemu/edk2-aarch64-code.fd", "/opt/homebrew/share/qemu/edk2-arm-vars.fd", ""),
        ]
        :
        [
            new("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", ""),
            new("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd", ""),
            new("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd", ""),
            new("/usr/local/share/qemu/edk2-x86_64-code.fd", "/usr/local/share/qemu/edk2-i386-vars.fd", ""),
        ];

    private static string Name(GuestArchitecture architecture) => architecture == GuestArchitecture.Arm64 ? "arm64 (aarch64)" : "x86_64";

    private static HashSet<string> Strings(JsonNode? node) =>
        (node as JsonArray ?? []).Select(n => n?.GetValue<string>()).OfType<string>().ToHashSet(StringComparer.Ordinal);

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }
}
