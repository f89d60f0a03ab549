using System.Text;
using System.Text.Json;

namespace LinuxKit.Testing.Images;

/// <summary>
/// The JSON of LinuxKit's metadata convention: <c>{"NAME": {"entries": {...}}}</c> is a
/// directory under /run/config, <c>{"content": "...", "perm": "0600"}</c> a file.
/// </summary>
internal static class LinuxKitMetadata
{
    /// <summary>
    /// The SDK's metadata: the VM's public key as /run/config/ssh/authorized_keys and, when
    /// there are volumes, /run/config/mounts/virtfs with one "TAG GUEST-PATH" line per 9p share.
    /// </summary>
    public static byte[] Build(string authorizedKey, IReadOnlyList<(string Tag, string GuestPath)> shares)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            Directory(json, "ssh", () => File(json, "authorized_keys", authorizedKey.TrimEnd() + "\n", "0600"));
            if (shares.Count > 0)
            {
                var lines = new StringBuilder();
                foreach (var (tag, guestPath) in shares) lines.Append(tag).Append(' ').Append(guestPath).Append('\n');
                Directory(json, "mounts", () => File(json, "virtfs", lines.ToString(), "0644"));
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void Directory(Utf8JsonWriter json, string name, Action writeEntries)
    {
        json.WriteStartObject(name);
        json.WriteStartObject("entries");
        writeEntries();
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void File(Utf8JsonWriter json, string name, string content, string perm)
    {
        json.WriteStartObject(name);
        json.WriteString("perm", perm);
        json.WriteString("content", content);
        json.WriteEndObject();
    }
}
