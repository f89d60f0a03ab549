namespace LinuxKit.Testing.Images;

/// <summary>
/// The entry an ISOLINUX or SYSLINUX configuration boots by default (LinuxKit writes one label,
/// <c>KERNEL</c>, <c>INITRD</c> and <c>APPEND</c>), and the kernel command line SYSLINUX hands
/// that kernel: <c>BOOT_IMAGE=</c> the kernel as written, the <c>APPEND</c> line, then
/// <c>initrd=</c> for an <c>INITRD</c> line. Pure.
/// </summary>
/// <param name="Kernel">The kernel's path as written, relative paths resolved against the configuration's folder.</param>
/// <param name="Initrd">The initrd's path, resolved likewise; null when the entry has none.</param>
/// <param name="CommandLine">The command line the kernel sees under SYSLINUX.</param>
/// <param name="DoesMore">
/// The first line that has the boot loader do more than start that entry at once (a prompt, a
/// menu, a message or output of its own, another command line): a boot that skips the loader
/// would skip that too. Null when the configuration only names and starts its entry.
/// </param>
internal sealed record SyslinuxMenu(string Kernel, string? Initrd, string CommandLine, string? DoesMore = null)
{
    // What changes nothing but which entry starts and with what: MENU lines are read only by a
    // menu module, which only a UI line (not in this list) starts; a TIMEOUT waits only at a prompt.
    private static readonly HashSet<string> OnlyChooseTheEntry = ["DEFAULT", "LABEL", "KERNEL", "LINUX", "INITRD", "APPEND", "TIMEOUT", "TOTALTIMEOUT", "MENU"];

    /// <summary>Where ISOLINUX looks for its configuration, in its order.</summary>
    public static readonly IReadOnlyList<string> IsoConfigurations =
        ["/boot/isolinux/isolinux.cfg", "/isolinux/isolinux.cfg", "/isolinux.cfg", "/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg", "/syslinux.cfg"];

    /// <summary>Where SYSLINUX and EXTLINUX look on a disk's file system, in their order.</summary>
    public static readonly IReadOnlyList<string> DiskConfigurations =
        ["/boot/syslinux/syslinux.cfg", "/syslinux/syslinux.cfg", "/syslinux.cfg", "/boot/extlinux/extlinux.conf", "/extlinux/extlinux.conf", "/extlinux.conf"];

    /// <summary>The default entry of the configuration <paramref name="text"/>, read from <paramref name="configPath"/>.</summary>
    /// <exception cref="InvalidDataException">The entry cannot be told, or is not a Linux kernel with at most one initrd; the message says why.</exception>
    public static SyslinuxMenu Parse(string text, string configPath)
    {
        string? defaultLabel = null;
        string? globalAppend = null;
        var labels = new List<Label>();
        string? doesMore = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var split = line.IndexOfAny([' ', '\t']);
            var keyword = (split < 0 ? line : line[..split]).ToUpperInvariant();
            var value = split < 0 ? "" : line[(split + 1)..].Trim();
            var label = labels.Count > 0 ? labels[^1] : null;
            if (doesMore is null && !OnlyChooseTheEntry.Contains(keyword) && !(keyword == "PROMPT" && value == "0"))
                doesMore = line;
            switch (keyword)
            {
                case "DEFAULT":
                    defaultLabel = value;
                    break;
                case "LABEL":
                    labels.Add(new Label(value));
                    break;
                case "KERNEL" or "LINUX" when label is not null:
                    label.Kernel = value;
                    break;
                case "INITRD" when label is not null:
                    label.Initrd = value;
                    break;
                case "APPEND":
                    if (label is null) globalAppend = value;
                    else label.Append = value;
                    break;
                case "INCLUDE" or "CONFIG":
                    throw new InvalidDataException($"{configPath} reads further configuration ({keyword} {value}), which is not followed");
            }
        }

        var chosen = defaultLabel is null
            ? labels.Count == 1 ? labels[0] : throw new InvalidDataException($"{configPath} has {labels.Count} labels and no DEFAULT")
            : labels.FirstOrDefault(l => l.Name == defaultLabel)
                ?? throw new InvalidDataException($"{configPath} boots 'DEFAULT {defaultLabel}', which names no LABEL");
        var kernel = chosen.Kernel ?? throw new InvalidDataException($"{configPath}: LABEL {chosen.Name} names no KERNEL");
        if (kernel.EndsWith(".c32", StringComparison.OrdinalIgnoreCase) || kernel.EndsWith(".com", StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"{configPath}: LABEL {chosen.Name} starts the module {kernel}, not a Linux kernel");
        var append = chosen.Append ?? globalAppend ?? "";
        if (append == "-") append = "";

        var fromAppend = append.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => w.StartsWith("initrd=", StringComparison.Ordinal)).Select(w => w["initrd=".Length..]).ToList();
        var initrds = (chosen.Initrd is null ? [] : new[] { chosen.Initrd }).Concat(fromAppend).ToList();
        if (initrds.Count > 1 || initrds.Any(i => i.Contains(',', StringComparison.Ordinal)))
            throw new InvalidDataException($"{configPath}: LABEL {chosen.Name} loads more than one initrd ({string.Join(", ", initrds)})");

        var commandLine = $"BOOT_IMAGE={kernel}" + (append.Length > 0 ? " " + append : "") + (chosen.Initrd is { } initrd ? " initrd=" + initrd : "");
        var folder = configPath[..(configPath.LastIndexOf('/') + 1)];
        return new SyslinuxMenu(Resolve(folder, kernel), initrds.Count == 1 ? Resolve(folder, initrds[0]) : null, commandLine, doesMore);
    }

    private static string Resolve(string folder, string path) => path.StartsWith('/') ? path : folder + path;

    private sealed class Label(string name)
    {
        public string Name { get; } = name;
        public string? Kernel { get; set; }
        public string? Initrd { get; set; }
        public string? Append { get; set; }
    }
}
