using System.Globalization;

namespace LinuxKit.Testing.KubeVirt;

/// <summary>
/// The bridge's command line, as the core's KubeVirtBridgeCommand writes it: a verb, then
/// <c>--name value</c> pairs (<c>--forward</c> may repeat) and flags.
/// </summary>
internal sealed class BridgeArguments
{
    private static readonly HashSet<string> Flags = ["--dry-run", "--uefi", "--network-policy"];
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);

    private BridgeArguments(string verb) => Verb = verb;

    public string Verb { get; }

    /// <exception cref="ArgumentException">No verb, or an option without its value.</exception>
    public static BridgeArguments Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
            throw new ArgumentException("usage: LinuxKit.Testing.KubeVirt run|delete|prune --kubeconfig FILE [--context NAME] [--namespace NAME] ...");
        var parsed = new BridgeArguments(args[0]);
        for (var i = 1; i < args.Count; i++)
        {
            var name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"Unexpected argument '{name}'.");
            string value;
            if (Flags.Contains(name)) value = "true";
            else if (i + 1 < args.Count) value = args[++i];
            else throw new ArgumentException($"Option {name} needs a value.");
            if (!parsed._values.TryGetValue(name, out var list)) parsed._values[name] = list = [];
            list.Add(value);
        }
        return parsed;
    }

    public string? Optional(string name) => _values.TryGetValue(name, out var list) ? list[^1] : null;

    /// <exception cref="ArgumentException">The option is missing.</exception>
    public string Required(string name) => Optional(name) ?? throw new ArgumentException($"Option {name} is required for '{Verb}'.");

    public int Number(string name) =>
        int.TryParse(Required(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new ArgumentException($"Option {name} must be a whole number, not '{Required(name)}'.");

    public IReadOnlyList<string> All(string name) => _values.TryGetValue(name, out var list) ? list : [];

    public bool Flag(string name) => Optional(name) == "true";
}
